"""Model families in the MLflow registry: versions, the champion / challenger aliases.

The first version of a family becomes `champion`. A later version becomes `challenger`
and is promoted to `champion` only if it beats the champion on the same test rows
(the champion is re-scored on the new version's test split, so both numbers are
comparable). Every decision is written on the version as tags.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
_FAMILY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_family_name(name: str) -> str:
    if not _FAMILY_RE.match(name or ""):
        raise ValueError(
            f"model family name must start with a letter or digit and use letters, digits, '_', '.', '-' "
            f"(at most 100 characters); got {name!r}"
        )
    return name


@dataclass(frozen=True)
class PromotionDecision:
    """Which alias a new version got, and the numbers behind it."""

    alias: str
    reason: str
    new_score: float
    champion_version: str | None = None
    champion_score: float | None = None

    def to_tags(self) -> dict[str, str]:
        tags = {
            "loopml.promotion.alias": self.alias,
            "loopml.promotion.reason": self.reason,
            "loopml.promotion.new_score": f"{self.new_score:.6g}",
        }
        if self.champion_version is not None:
            tags["loopml.promotion.compared_to_version"] = self.champion_version
        if self.champion_score is not None:
            tags["loopml.promotion.champion_score"] = f"{self.champion_score:.6g}"
        return tags


def current_champion(client: Any, family: str) -> Any | None:
    """The ModelVersion aliased `champion`, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(family, CHAMPION)
    except MlflowException:
        return None


def decide_alias(
    *, new_score: float, champion_version: str | None, champion_score: float | None, better
) -> PromotionDecision:
    """Pure promotion rule: champion if first, or strictly better on the same rows."""
    if champion_version is None:
        return PromotionDecision(CHAMPION, "first version of the family", new_score)
    if champion_score is None:
        return PromotionDecision(
            CHALLENGER,
            "champion could not be scored on the same test rows; kept as challenger",
            new_score,
            champion_version,
        )
    if better(new_score, champion_score):
        return PromotionDecision(
            CHAMPION,
            f"beats champion v{champion_version} on the same test rows",
            new_score,
            champion_version,
            champion_score,
        )
    return PromotionDecision(
        CHALLENGER,
        f"does not beat champion v{champion_version} on the same test rows",
        new_score,
        champion_version,
        champion_score,
    )


def apply_decision(client: Any, family: str, version: str, decision: PromotionDecision) -> None:
    """Move the alias and record the decision on the version."""
    for key, value in decision.to_tags().items():
        client.set_model_version_tag(family, version, key, value)
    client.set_registered_model_alias(family, decision.alias, version)
    if decision.alias == CHAMPION and decision.champion_version is not None:
        client.set_registered_model_alias(family, "previous_champion", decision.champion_version)
    log.info("family %s: version %s is now %s (%s)", family, version, decision.alias, decision.reason)
