"""Model families in the MLflow registry: names and aliases.

`champion` is the version in use, `challenger` the candidate; how a version moves between
them is the promotion gate's job (`automl_tasks.families.promotion`).
"""

from __future__ import annotations

import re
from typing import Any

from automl_tasks.core.errors import InvalidValueError

CHAMPION = "champion"
CHALLENGER = "challenger"
_FAMILY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_family_name(name: str) -> str:
    if not _FAMILY_RE.match(name or ""):
        raise InvalidValueError(
            f"model family name must start with a letter or digit and use letters, digits, '_', '.', '-' "
            f"(at most 100 characters); got {name!r}"
        )
    return name


def current_alias_version(client: Any, family: str, alias: str) -> str | None:
    """The version number behind `family@alias`, or None when the alias is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(family, alias).version)
    except MlflowException:
        return None
