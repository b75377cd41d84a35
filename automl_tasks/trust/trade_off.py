"""Which version of a family is the best trade-off of accuracy, robustness and privacy.

Over the versions scored on the family's current evaluation data that have a trust report:
the Pareto front of (evaluation score, membership-attack AUC lower is better, accuracy
under attack), and on it the version with the best mean rank over the three, which the
advisor names. A person who weighs privacy above accuracy reads the front, not the pick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from automl_tasks.core.tags import (
    EVAL_SCORE_TAG,
    EVAL_URI_TAG,
    METRIC_TAG,
    TRUST_ADV_ACCURACY_TAG,
    TRUST_MIA_AUC_TAG,
    tag_number,
)
from automl_tasks.estimators.metrics import Metric


@dataclass(frozen=True)
class Candidate:
    version: str
    score: float
    attack_auc: float
    robust_accuracy: float | None

    def criteria(self, metric: Metric) -> tuple[float, ...]:
        """Larger is better on every criterion (a missing robustness counts as the worst)."""
        score = self.score if metric.direction == "maximize" else -self.score
        robust = self.robust_accuracy if self.robust_accuracy is not None else -1.0
        return score, -self.attack_auc, robust


def candidates(versions: list[tuple[str, dict[str, str]]], eval_uri: str) -> list[Candidate]:
    out = []
    for version, tags in versions:
        score, auc = tag_number(tags.get(EVAL_SCORE_TAG)), tag_number(tags.get(TRUST_MIA_AUC_TAG))
        if score is None or auc is None or tags.get(EVAL_URI_TAG) != eval_uri:
            continue
        out.append(Candidate(version, score, auc, tag_number(tags.get(TRUST_ADV_ACCURACY_TAG))))
    return out


def pareto_front(found: list[Candidate], metric: Metric) -> list[Candidate]:
    def dominated(a: Candidate) -> bool:
        ca = a.criteria(metric)
        return any(
            all(x >= y for x, y in zip(b.criteria(metric), ca, strict=True)) and b.criteria(metric) != ca for b in found
        )

    return [c for c in found if not dominated(c)]


def best_trade_off(found: list[Candidate], metric: Metric) -> tuple[Candidate, list[Candidate]] | None:
    """(the pick, the front), or None with fewer than two candidates to weigh."""
    if len(found) < 2:
        return None
    front = pareto_front(found, metric)
    ranks: dict[str, float] = {c.version: 0.0 for c in found}
    for i in range(3):
        for rank, c in enumerate(sorted(found, key=lambda c: c.criteria(metric)[i], reverse=True)):
            ranks[c.version] += rank / 3
    pick = min(front, key=lambda c: (ranks[c.version], -c.criteria(metric)[0]))
    return pick, front


def trade_off_note(versions: list[tuple[str, dict[str, str]]], eval_uri: str) -> dict[str, str] | None:
    """The advisor's note naming the best trade-off, or None when there is nothing to weigh."""
    found = candidates(versions, eval_uri)
    if not found:
        return None
    metric = Metric(dict(versions[0][1]).get(METRIC_TAG, "roc_auc"))
    chosen = best_trade_off(found, metric)
    if chosen is None:
        return None
    pick, front = chosen

    def describe(c: Candidate) -> str:
        robust = "" if c.robust_accuracy is None else f", {c.robust_accuracy:.0%} accurate under attack"
        return f"v{c.version} ({metric.name} {c.score:.4g}, attack AUC {c.attack_auc:.3f}{robust})"

    others = [describe(c) for c in front if c is not pick]
    text = (
        f"of {len(found)} versions with a trust report, {describe(pick)} is the best trade-off of accuracy, "
        "robustness and privacy (best mean rank on the Pareto front)"
        + (f"; also on the front: {'; '.join(others)}" if others else "; it is the only version on the front")
    )
    return {"kind": "trust_trade_off", "param": f"v{pick.version}", "text": text}


def family_trade_off_note(client: Any, family: str) -> dict[str, str] | None:
    """`trade_off_note` over the family's versions in the MLflow registry."""
    from mlflow.exceptions import MlflowException

    try:
        eval_uri = client.get_registered_model(family).tags.get(EVAL_URI_TAG, "")
        versions = client.search_model_versions(f"name='{family}'")
    except MlflowException:
        return None
    return trade_off_note([(str(v.version), dict(v.tags)) for v in versions], eval_uri)
