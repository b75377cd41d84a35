"""Zero-shot warm start from similar tables (issue #11 item 5, FLAML's zero-shot idea).

Every study records the traits of its table (task type, rows, columns, share of
categorical columns). A new search enqueues, after the default configuration and its own
family's earlier best ones, the best configuration of each of the `PORTFOLIO_SIZE` nearest
earlier studies of other families: so the portfolio is the workspace's own history, and it
grows with every search. A configuration is enqueued only where the new search space
admits it exactly (`SearchSpace.admits`): the formatter may have dropped a model family
for a small budget, and a user's space may differ altogether.

A workspace's first searches have no history to draw on: the places its own studies leave
empty are filled from the built-in portfolio (`builtin_portfolio.yaml`, per task kind), a
few LightGBM configurations chosen by benchmarks/build_portfolio.py for doing well beside
the default configuration across public tables other than the quality benchmark's.

Nearness: tables of another task type never count; otherwise the distance is the
difference in log10 rows plus the difference in log10 columns plus the difference in
categorical share. Coarse on purpose: a handful of traits is what the evidence of a
workspace's few dozen studies can support (FLAML's portfolio uses a similar handful).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from automl_tasks.core.tags import FAMILY_TAG, TRAITS_ATTR
from automl_tasks.estimators.base import DataSpec
from automl_tasks.search_space.language import SearchSpace

log = logging.getLogger(__name__)

#: configurations from other studies enqueued at the start of a new search
PORTFOLIO_SIZE = 3
#: at most this share of a search's trial budget goes to the portfolio (at least one trial),
#: so a small budget keeps draws of its own strategy, which try the other model families
PORTFOLIO_SHARE_OF_TRIALS = 1 / 3


def portfolio_size(n_trials: int) -> int:
    """How many portfolio configurations a search of `n_trials` trials enqueues."""
    return min(PORTFOLIO_SIZE, max(1, int(n_trials * PORTFOLIO_SHARE_OF_TRIALS)))


#: how many of the nearest studies are opened to find them (each open reads its trials)
NEAREST_STUDIES = 8
#: configurations that fill the portfolio where the workspace has too few studies of its own
BUILTIN_PORTFOLIO = Path(__file__).with_name("builtin_portfolio.yaml")
#: the source a built-in configuration's trial records (PORTFOLIO_SOURCE_ATTR)
BUILTIN_SOURCE = "built-in portfolio"


@dataclass(frozen=True)
class TableTraits:
    """What makes two tables alike for a search: task type, size and column kinds."""

    task_type: str
    rows: int
    columns: int
    categorical_share: float

    def distance(self, other: TableTraits) -> float:
        if self.task_type != other.task_type:
            return math.inf
        return (
            abs(math.log10(max(self.rows, 1)) - math.log10(max(other.rows, 1)))
            + abs(math.log10(max(self.columns, 1)) - math.log10(max(other.columns, 1)))
            + abs(self.categorical_share - other.categorical_share)
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> TableTraits | None:
        try:
            return cls(str(raw["task_type"]), int(raw["rows"]), int(raw["columns"]), float(raw["categorical_share"]))
        except (KeyError, TypeError, ValueError):
            return None


def table_traits(data: DataSpec) -> TableTraits:
    """The traits of the stored dataset version a search runs on."""
    import pandas as pd

    from automl_tasks.estimators.features import FeatureSchema

    frame = pd.read_parquet(data.path)
    schema = FeatureSchema.infer(frame.drop(columns=[data.target]))
    columns = len(schema.model_numeric) + len(schema.model_categorical)
    share = len(schema.model_categorical) / columns if columns else 0.0
    return TableTraits(data.task_type, len(frame), columns, share)


def _best_config(study: Any) -> dict[str, Any] | None:
    """The configuration the study registered: its best feasible trial's
    (`search.deployment.chosen_trial`); None when it has none."""
    from automl_tasks.core.errors import UserError
    from automl_tasks.search.deployment import chosen_trial

    try:
        return dict(chosen_trial(study).params)
    except UserError:
        return None


def portfolio_configs(
    storage: Any,
    family: str,
    traits: TableTraits,
    space: SearchSpace,
    *,
    exclude: list[dict[str, Any]],
    size: int = PORTFOLIO_SIZE,
) -> list[tuple[dict[str, Any], str]]:
    """(configuration, study it came from) for the nearest earlier studies of other families
    whose best configuration `space` admits, then the built-in portfolio's configurations for
    the task type (source BUILTIN_SOURCE) where they fit `space` (`_in_space`), up to `size`;
    none of `exclude`, none twice."""
    import optuna

    nearby = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.user_attrs.get(FAMILY_TAG) == family or len(summary.directions) != 1:
            continue
        other = TableTraits.from_dict(summary.user_attrs.get(TRAITS_ATTR))
        distance = traits.distance(other) if other is not None else math.inf
        if math.isfinite(distance):
            nearby.append((distance, summary.study_name))
    chosen: list[tuple[dict[str, Any], str]] = []
    earlier = (
        (_best_config(optuna.load_study(study_name=name, storage=storage)), name)
        for _, name in sorted(nearby)[:NEAREST_STUDIES]
    )
    builtin = ((_in_space(space, config), BUILTIN_SOURCE) for config in builtin_configs(traits.task_type))
    for config, source in itertools.chain(earlier, builtin):  # lazily: a study is opened only while needed
        taken = exclude + [c for c, _ in chosen]
        if config is not None and config not in taken and space.admits(config):
            chosen.append((config, source))
        if len(chosen) == size:
            break
    return chosen


def _in_space(space: SearchSpace, config: dict[str, Any]) -> dict[str, Any] | None:
    """A built-in configuration as one of `space`'s: every parameter it names as it is, the
    others (the feature groups the formatter adds for a table's feature pipeline) at their
    defaults; None where it does not fit (a space of other parameters, a range a person
    narrowed, a model family left out)."""
    projected = space.project({**space.default_config(), **config})
    if projected is None or any(projected.get(name) != value for name, value in config.items()):
        return None
    return projected


def builtin_configs(task_type: str) -> list[dict[str, Any]]:
    """The built-in portfolio's configurations for a task type (binary and multiclass share
    the classification ones)."""
    kind = "regression" if task_type == "regression" else "classification"
    return [dict(config) for config in _builtin_portfolio().get(kind, [])]


@functools.cache
def _builtin_portfolio() -> dict[str, list[dict[str, Any]]]:
    import yaml

    return yaml.safe_load(BUILTIN_PORTFOLIO.read_text()) or {}
