"""Zero-shot warm start from similar tables (issue #11 item 5, FLAML's zero-shot idea).

Every study records the traits of its table (task type, rows, columns, share of
categorical columns). A new search enqueues, after the default configuration and its own
family's earlier best ones, the best configuration of each of the `PORTFOLIO_SIZE` nearest
earlier studies of other families: so the portfolio is the workspace's own history, and it
grows with every search. A configuration is enqueued only where the new search space
admits it exactly (`SearchSpace.admits`): the formatter may have dropped a model family
for a small budget, and a user's space may differ altogether.

Nearness: tables of another task type never count; otherwise the distance is the
difference in log10 rows plus the difference in log10 columns plus the difference in
categorical share. Coarse on purpose: a handful of traits is what the evidence of a
workspace's few dozen studies can support (FLAML's portfolio uses a similar handful).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

from automl_tasks.core.tags import FAMILY_TAG, TRAITS_ATTR
from automl_tasks.estimators.base import DataSpec
from automl_tasks.search_space.language import SearchSpace

log = logging.getLogger(__name__)

#: configurations from other studies enqueued at the start of a new search
PORTFOLIO_SIZE = 3
#: how many of the nearest studies are opened to find them (each open reads its trials)
NEAREST_STUDIES = 8


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
    storage: Any, family: str, traits: TableTraits, space: SearchSpace, *, exclude: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], str]]:
    """(configuration, study it came from) for the nearest earlier studies of other families
    whose best configuration `space` admits; none of `exclude`, none twice."""
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
    for _, name in sorted(nearby)[:NEAREST_STUDIES]:
        config = _best_config(optuna.load_study(study_name=name, storage=storage))
        taken = exclude + [c for c, _ in chosen]
        if config is not None and config not in taken and space.admits(config):
            chosen.append((config, name))
        if len(chosen) == PORTFOLIO_SIZE:
            break
    return chosen
