"""The promotion gate: who becomes `champion` of a model family, and rollback.

A version whose refit failed its integrity check (`automl_tasks.families.refit_check`) is never
promoted automatically, and no version becomes champion without beating a trivial
baseline (majority class / prior, or the mean) on the evaluation data. The first version
of a family must also come from a search whose best configuration beat the search's
default configuration by the margin, or be that configuration. A challenger replaces the
champion only if it beats it on the family's fixed evaluation data by a margin and does not regress the guard metrics (single-row latency, model size)
beyond their allowed ratios. A family's gate may also require trust thresholds (issue #17:
membership-attack AUC, accuracy under attack, DP epsilon), stored on the family so that every
automatic promotion applies them. Manual promotion skips the score rule, not the record.
Every change of `champion` happens under the family's lock and is appended to the
family's champion history, so racing promotions leave the alias and the history
consistent and a rollback always knows where to go back to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from automl_tasks.core.errors import ConfigurationError, UserError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.shared_lock import shared_lock
from automl_tasks.core.tags import (
    BASELINE_SCORE_TAG,
    BASELINE_URI_TAG,
    DEFAULT_CONFIG_SCORE_TAG,
    EVAL_SCORE_TAG,
    EVAL_URI_TAG,
    GATE_SETTING_PREFIX,
    HISTORY_TAG,
    IS_DEFAULT_CONFIG_TAG,
    METRIC_TAG,
    PROMOTION_PREFIX,
    REFIT_CHECK_REASON_TAG,
    REFIT_CHECK_TAG,
    ROLLED_BACK_TAG,
    SEARCH_SCORE_TAG,
    TRUST_ADV_ACCURACY_TAG,
    TRUST_DP_EPSILON_TAG,
    TRUST_MIA_AUC_TAG,
    TRUST_SKIPPED_TAG,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.estimators.metrics import Metric
from automl_tasks.families.aliases import CHALLENGER, CHAMPION, current_alias_version
from automl_tasks.families.refit_check import FAILED

log = logging.getLogger(__name__)

MODES = ("auto", "manual")


@dataclass(frozen=True)
class GateConfig:
    """The promotion rule's knobs (the promote_model form's, or the family's stored gate).

    The trust thresholds (issue #17) are off at 0: a version's trust report
    (automl_tasks.trust) must show a membership-attack AUC of at most `max_attack_auc`, an
    accuracy under attack of at least `min_robust_accuracy`, and a DP epsilon of at most
    `max_dp_epsilon`; a version without the measurement a threshold needs is refused."""

    margin: float = 0.0  # required improvement of the evaluation metric
    max_latency_ratio: float = 1.5  # challenger latency may be at most this times the champion's
    max_size_ratio: float = 2.0
    max_attack_auc: float = 0.0  # 0 = no threshold; else in (0.5, 1]
    min_robust_accuracy: float = 0.0  # 0 = no threshold; else in (0, 1]
    max_dp_epsilon: float = 0.0  # 0 = no threshold (any model, private or not)

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ConfigurationError(f"The 'margin' parameter must be >= 0. Got {self.margin!r} instead.")
        for name in ("max_latency_ratio", "max_size_ratio"):
            if getattr(self, name) < 1.0:
                raise ConfigurationError(f"The {name!r} parameter must be >= 1.0. Got {getattr(self, name)!r} instead.")
        if self.max_attack_auc and not 0.5 <= self.max_attack_auc <= 1.0:
            raise ConfigurationError(
                f"The 'max_attack_auc' parameter must be 0 (off) or in [0.5, 1]. Got {self.max_attack_auc!r} instead."
            )
        if not 0.0 <= self.min_robust_accuracy <= 1.0:
            raise ConfigurationError(
                f"The 'min_robust_accuracy' parameter must be in [0, 1]. Got {self.min_robust_accuracy!r} instead."
            )
        if self.max_dp_epsilon < 0:
            raise ConfigurationError(f"The 'max_dp_epsilon' parameter must be >= 0. Got {self.max_dp_epsilon!r}.")

    def trust_refusal(self, candidate: dict[str, str]) -> str | None:
        """Why the candidate's trust report breaks a threshold of this gate, or None."""
        checks = (
            (self.max_attack_auc, TRUST_MIA_AUC_TAG, "membership-attack AUC", lambda v, t: v <= t, "at most"),
            (
                self.min_robust_accuracy,
                TRUST_ADV_ACCURACY_TAG,
                "accuracy under attack",
                lambda v, t: v >= t,
                "at least",
            ),
            (self.max_dp_epsilon, TRUST_DP_EPSILON_TAG, "differential-privacy epsilon", lambda v, t: v <= t, "at most"),
        )
        for threshold, tag, what, holds, bound in checks:
            if not threshold:
                continue
            value = _float(candidate, tag)
            if value is None:
                skipped = candidate.get(TRUST_SKIPPED_TAG, "")
                return f"the gate requires a {what} of {bound} {threshold:g}, and none was measured" + (
                    f" ({skipped})" if skipped else ""
                )
            if not holds(value, threshold):
                return f"{what} {value:.4g} breaks the gate's threshold ({bound} {threshold:g})"
        return None

    @classmethod
    def stored(cls, client: Any, family: str) -> GateConfig:
        """The family's stored gate (`loopml.gate.*` tags of the registered model), defaults where unset."""
        return cls.from_tags(client.get_registered_model(family).tags, family)

    @classmethod
    def from_tags(cls, tags: dict[str, str], family: str) -> GateConfig:
        """`stored` from the registered model's tags, when the caller has them already."""
        known = {f.name for f in fields(cls)}
        values = {}
        for key, raw in tags.items():
            name = key.removeprefix(GATE_SETTING_PREFIX)
            if key.startswith(GATE_SETTING_PREFIX) and name in known:
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise ConfigurationError(
                        f"family {family!r}: gate setting {key} is {raw!r}, not a number"
                    ) from None
        return cls(**values)

    def with_trust_of(self, stored: GateConfig) -> GateConfig:
        """This gate with the `stored` family gate's trust thresholds wherever this one sets none:
        a family's trust policy holds for every automatic promotion, whatever form started it."""
        names = ("max_attack_auc", "min_robust_accuracy", "max_dp_epsilon")
        return replace(self, **{n: getattr(self, n) or getattr(stored, n) for n in names})

    def store(self, client: Any, family: str) -> None:
        """Make this the family's gate: automatic promotions (pipelines, drift_retrain) use it."""
        for name, value in asdict(self).items():
            client.set_registered_model_tag(family, f"{GATE_SETTING_PREFIX}{name}", f"{value:g}")


@dataclass(frozen=True)
class GateResult:
    """The decision with its numbers; recorded as tags on the candidate version."""

    promote: bool
    reason: str
    candidate_score: float | None
    champion_score: float | None
    latency_ratio: float | None
    size_ratio: float | None
    baseline_score: float | None = None


def _float(tags: dict[str, str], key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, ValueError):
        return None


def _baseline(candidate: dict[str, str]) -> float | None:
    """The trivial baseline's score, if it was measured on the candidate's evaluation data."""
    if candidate.get(BASELINE_URI_TAG) != candidate.get(EVAL_URI_TAG):
        return None
    return _float(candidate, BASELINE_SCORE_TAG)


def integrity_refusal(candidate: dict[str, str], metric: Metric) -> str | None:
    """Why no gate may promote `candidate` automatically, or None.

    Refused: a failed refit integrity check; an evaluation score that does not beat the
    trivial baseline. Versions registered before these tags existed are not refused."""
    if candidate.get(REFIT_CHECK_TAG) == FAILED:
        return f"refit integrity check failed ({candidate.get(REFIT_CHECK_REASON_TAG, 'no reason recorded')})"
    score, baseline = _float(candidate, EVAL_SCORE_TAG), _baseline(candidate)
    if baseline is not None and (score is None or metric.gain(score, baseline) <= 0):
        shown = "none" if score is None else f"{score:.5g}"
        return f"{metric.name} {shown} on the evaluation data does not beat the trivial baseline's {baseline:.5g}"
    return None


def judge_first_version(candidate: dict[str, str], metric: Metric, config: GateConfig) -> GateResult:
    """The rule for a family without a champion: beat the trivial baseline (checked by
    `integrity_refusal`) and the search's default configuration by the margin, or be it."""
    score, baseline = _float(candidate, EVAL_SCORE_TAG), _baseline(candidate)
    searched, default = _float(candidate, SEARCH_SCORE_TAG), _float(candidate, DEFAULT_CONFIG_SCORE_TAG)
    if candidate.get(IS_DEFAULT_CONFIG_TAG) == "true":
        versus_default = "it is the search's default configuration"
    elif searched is None or default is None:
        versus_default = "no default-configuration trial to compare with"
    else:
        gain = metric.gain(searched, default)
        if gain < config.margin:
            reason = (
                f"the family has no champion, but the searched configuration's validated {metric.name} "
                f"{searched:.5g} beats the default configuration's {default:.5g} by {gain:.3g}, "
                f"less than the margin {config.margin}"
            )
            return GateResult(False, reason, score, None, None, None, baseline)
        versus_default = f"the search beat the default configuration ({searched:.5g} vs {default:.5g})"
    against = "no baseline recorded" if baseline is None else f"beats the trivial baseline's {baseline:.5g}"
    shown = "unscored" if score is None else f"{metric.name} {score:.5g}"
    return GateResult(
        True, f"the family has no champion; {shown} {against}; {versus_default}", score, None, None, None, baseline
    )


def judge(candidate: dict[str, str], champion: dict[str, str] | None, metric: Metric, config: GateConfig) -> GateResult:
    """The pure promotion rule over the two versions' tags."""
    cand_score = _float(candidate, EVAL_SCORE_TAG)
    refusal = integrity_refusal(candidate, metric) or config.trust_refusal(candidate)
    if refusal is not None:
        champ_score = _float(champion, EVAL_SCORE_TAG) if champion else None
        return GateResult(False, refusal, cand_score, champ_score, None, None, _baseline(candidate))
    if champion is None:
        return judge_first_version(candidate, metric, config)
    champ_score = _float(champion, EVAL_SCORE_TAG)
    if cand_score is None or champ_score is None or candidate.get(EVAL_URI_TAG) != champion.get(EVAL_URI_TAG):
        return GateResult(
            False, "not scored on the same evaluation data as the champion", cand_score, champ_score, None, None
        )
    ratios = {}
    for key, tag in (("latency", "latency_single_ms"), ("size", "onnx_size_kb")):
        a, b = _float(candidate, tag), _float(champion, tag)
        ratios[key] = a / b if a is not None and b else None
    gain = metric.gain(cand_score, champ_score)
    if gain <= config.margin:
        reason = f"{metric.name} {cand_score:.5g} vs champion {champ_score:.5g}: gain {gain:.3g} not above margin {config.margin}"
        return GateResult(False, reason, cand_score, champ_score, ratios["latency"], ratios["size"])
    if ratios["latency"] is not None and ratios["latency"] > config.max_latency_ratio:
        reason = f"latency x{ratios['latency']:.2f} of the champion's exceeds x{config.max_latency_ratio}"
        return GateResult(False, reason, cand_score, champ_score, ratios["latency"], ratios["size"])
    if ratios["size"] is not None and ratios["size"] > config.max_size_ratio:
        reason = f"size x{ratios['size']:.2f} of the champion's exceeds x{config.max_size_ratio}"
        return GateResult(False, reason, cand_score, champ_score, ratios["latency"], ratios["size"])
    reason = f"{metric.name} {cand_score:.5g} beats champion {champ_score:.5g} by {gain:.3g} (> margin {config.margin})"
    return GateResult(True, reason, cand_score, champ_score, ratios["latency"], ratios["size"])


@contextlib.contextmanager
def family_lock(ws: Workspace, family: str) -> Iterator[None]:
    """Exclusive lock per family around every change of its champion.

    With the registry on PostgreSQL (distributed mode) it is a PostgreSQL advisory lock in
    that database, so it holds across processes and machines; behind MLflow's tracking server,
    in the Optuna database the machines share; in the embedded mode (SQLite, one machine) it
    is an `fcntl` lock on a file of the workspace."""
    with shared_lock(ws, f"loopml.promotion:{family}", f"{family}.lock"):
        yield


def check_family_exists(client: Any, family: str) -> None:
    """Raise a LoopmlError naming the known families when `family` is not registered."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(family)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models(max_results=50))
        raise UserError(f"model family {family!r} does not exist; registered families: {known}") from None


def champion_history(client: Any, family: str) -> list[str]:
    model = client.get_registered_model(family)
    return json.loads(model.tags.get(HISTORY_TAG, "[]"))


def _set_champion(client: Any, family: str, version: str, *, record: dict[str, Any]) -> None:
    """Move `champion` (caller holds the family lock) and append to the history."""
    history = champion_history(client, family)
    previous = current_alias_version(client, family, CHAMPION)
    client.set_registered_model_alias(family, CHAMPION, version)
    if previous and previous != version:
        client.set_registered_model_alias(family, "previous_champion", previous)
    if current_alias_version(client, family, CHALLENGER) == version:
        client.delete_registered_model_alias(family, CHALLENGER)
    history.append(version)
    client.set_registered_model_tag(family, HISTORY_TAG, json.dumps(history[-100:]))
    for key, value in record.items():
        client.set_model_version_tag(family, version, f"{PROMOTION_PREFIX}{key}", str(value))


def _resolve_version(client: Any, family: str, version: str) -> str:
    if version in ("", "latest_challenger"):
        found = current_alias_version(client, family, CHALLENGER)
        if not found:
            raise UserError(f"family {family!r} has no challenger to promote")
        return found
    client.get_model_version(family, version)  # raises with MLflow's message if absent
    return version


def promote(
    ws: Workspace,
    family: str,
    version: str = "latest_challenger",
    *,
    mode: str = "auto",
    triggered_by: str = "unknown",
    config: GateConfig | None = None,
    approved_by: str = "",
) -> dict[str, Any]:
    """Run the gate (auto) or force (manual) `version` to champion; return the decision.
    `config`: the gate's knobs; None = the family's stored gate (`GateConfig.stored`), whose
    trust thresholds also apply where `config` sets none.
    `approved_by` (who approved a manual promotion, and when) is recorded with it."""
    if mode not in MODES:
        raise ConfigurationError(f"The 'mode' parameter must be one of {list(MODES)}. Got {mode!r} instead.")
    client = mlflow_client(ws)
    check_family_exists(client, family)
    stored = GateConfig.stored(client, family)
    config = (config or stored).with_trust_of(stored)
    with family_lock(ws, family):
        candidate = _resolve_version(client, family, version)
        tags = dict(client.get_model_version(family, candidate).tags)
        champion_version = current_alias_version(client, family, CHAMPION)
        if champion_version == candidate:
            return {"family": family, "version": candidate, "promoted": False, "reason": "already champion"}
        champion_tags = dict(client.get_model_version(family, champion_version).tags) if champion_version else None
        metric = Metric(tags.get(METRIC_TAG, "roc_auc"))
        result = judge(tags, champion_tags, metric, config)
        promoted = result.promote or mode == "manual"
        reason = result.reason if mode == "auto" else f"manual promotion ({result.reason})"
        record = {
            "decision": "promoted" if promoted else "rejected",
            "reason": reason,
            "mode": mode,
            "triggered_by": triggered_by,
            **({"approved_by": approved_by} if approved_by else {}),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "compared_to_version": champion_version or "",
            **{
                k: ("" if v is None else f"{v:.6g}")
                for k, v in asdict(result).items()
                if k not in ("promote", "reason")
            },
            "gate": json.dumps(asdict(config)),
        }
        if promoted:
            _set_champion(client, family, candidate, record=record)
        else:
            for key, value in record.items():
                client.set_model_version_tag(family, candidate, f"{PROMOTION_PREFIX}{key}", str(value))
            if current_alias_version(client, family, CHALLENGER) != candidate:
                client.set_registered_model_alias(family, CHALLENGER, candidate)
    log.info("family %s v%s: %s (%s)", family, candidate, record["decision"], reason)
    return {
        "family": family,
        "version": candidate,
        "promoted": promoted,
        "reason": reason,
        "champion": candidate if promoted else champion_version,
    }


def store_gate(ws: Workspace, family: str, config: GateConfig) -> None:
    """Make `config` the family's gate (under the family's lock, like every gate change)."""
    client = mlflow_client(ws)
    check_family_exists(client, family)
    with family_lock(ws, family):
        config.store(client, family)
    log.info("family %s: gate stored: %s", family, asdict(config))


def rollback(ws: Workspace, family: str, *, triggered_by: str = "unknown") -> dict[str, Any]:
    """Move `champion` back to the version that held it before the current one."""
    client = mlflow_client(ws)
    check_family_exists(client, family)
    with family_lock(ws, family):
        history = champion_history(client, family)
        current = current_alias_version(client, family, CHAMPION)
        while history and history[-1] == current:
            history.pop()
        if not history:
            raise UserError(f"family {family!r} has no earlier champion to roll back to")
        target = history.pop()
        client.set_registered_model_tag(family, HISTORY_TAG, json.dumps(history))
        record = {
            "decision": "rollback",
            "reason": f"rolled back from v{current}",
            "mode": "rollback",
            "triggered_by": triggered_by,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _set_champion(client, family, target, record=record)
        if current:
            client.set_model_version_tag(family, current, ROLLED_BACK_TAG, "true")
    log.info("family %s: champion rolled back from v%s to v%s", family, current, target)
    return {"family": family, "champion": target, "previous": current}


def evaluation_data_uri(client: Any, family: str) -> str | None:
    """URI of the family's fixed evaluation dataset, if the family has one."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(family).tags.get(EVAL_URI_TAG)
    except MlflowException:
        return None


def evaluation_data_path(ws: Workspace, family: str) -> Path | None:
    """Local file of the family's fixed evaluation data, if the family has one."""
    from automl_tasks.data import DatasetStore, parse_dataset_uri

    uri = evaluation_data_uri(mlflow_client(ws), family)
    if not uri:
        return None
    name, version = parse_dataset_uri(uri)
    return DatasetStore(ws.datasets, ws.dvc_remote).path(name, version)
