"""The search-space language and the built-in spaces."""

from pathlib import Path

from automl_tasks.search_space.language import (
    Condition,
    ForbiddenConfiguration,
    Param,
    SearchSpace,
    load_search_space,
    parse_search_space,
)

DEFAULT_TABULAR_SPACE = Path(__file__).with_name("default_tabular.yaml")


def default_tabular_space() -> SearchSpace:
    """The built-in tabular space (model choice + preprocessing)."""
    return load_search_space(str(DEFAULT_TABULAR_SPACE))


__all__ = [
    "DEFAULT_TABULAR_SPACE",
    "Condition",
    "ForbiddenConfiguration",
    "Param",
    "SearchSpace",
    "default_tabular_space",
    "load_search_space",
    "parse_search_space",
]
