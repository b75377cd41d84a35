"""What a person reads about model families: every version with its lineage, scores, latency,
size and aliases; the champion history; the drift checks. For the Families page and its API.
"""

from __future__ import annotations

from typing import Any

from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    DERIVATION_TAG,
    DRIFT_STATUS_TAG,
    EVAL_SCORE_TAG,
    FEATURE_PIPELINE_TAG,
    KIND_TAG,
    LAST_RESULT_TAG,
    METRIC_TAG,
    PARENT_VERSION_TAG,
    PROMOTION_PREFIX,
    RUNTIME_TAG,
    STUDY_TAG,
    TRUST_ADV_ACCURACY_TAG,
    TRUST_DP_EPSILON_TAG,
    TRUST_MIA_AUC_TAG,
    TRUST_NOISE_RETAINED_TAG,
    TRUST_SKIPPED_TAG,
    tag_number,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.families.promotion import GateConfig, champion_history, check_family_exists

#: how many drift checks the overview lists, newest first
DRIFT_CHECKS_SHOWN = 10


def families(ws: Workspace) -> list[dict[str, Any]]:
    """Every registered family: its champion, challenger, number of versions and last drift check."""
    client = mlflow_client(ws)
    out = []
    for model in client.search_registered_models(max_results=1000):
        out.append(
            {
                "family": model.name,
                "champion": model.aliases.get("champion") if model.aliases else None,
                "challenger": model.aliases.get("challenger") if model.aliases else None,
                "versions": len(client.search_model_versions(f"name='{model.name}'", max_results=1000)),
                "last_drift_check": model.tags.get(LAST_RESULT_TAG, ""),
            }
        )
    return sorted(out, key=lambda f: f["family"])


def _version_row(version: Any, aliases: dict[str, list[str]]) -> dict[str, Any]:
    tags = version.tags
    metric = tags.get(METRIC_TAG, "")
    return {
        "version": str(version.version),
        "aliases": aliases.get(str(version.version), []),
        "derivation": tags.get(DERIVATION_TAG) or ("retrain" if tags.get(PARENT_VERSION_TAG) else "search"),
        "parent": tags.get(PARENT_VERSION_TAG, ""),
        "metric": metric,
        "test_score": tag_number(tags.get(f"test_{metric}")),
        "eval_score": tag_number(tags.get(EVAL_SCORE_TAG)),
        "latency_ms": tag_number(tags.get("latency_single_ms")),
        "size_kb": tag_number(tags.get("onnx_size_kb")),
        "runtime": tags.get(RUNTIME_TAG, ""),
        "study": tags.get(STUDY_TAG, ""),
        "feature_pipeline": tags.get(FEATURE_PIPELINE_TAG, ""),
        "promotion": {
            key[len(PROMOTION_PREFIX) :]: value
            for key, value in tags.items()
            if key.startswith(PROMOTION_PREFIX)
            and key[len(PROMOTION_PREFIX) :] in ("decision", "reason", "approved_by")
        },
        "trust": {
            "attack_auc": tag_number(tags.get(TRUST_MIA_AUC_TAG)),
            "robust_accuracy": tag_number(tags.get(TRUST_ADV_ACCURACY_TAG)),
            "noise_retained": tag_number(tags.get(TRUST_NOISE_RETAINED_TAG)),
            "dp_epsilon": tag_number(tags.get(TRUST_DP_EPSILON_TAG)),
            "skipped": tags.get(TRUST_SKIPPED_TAG, ""),
        },
        "created": version.creation_timestamp / 1000,
        "run_id": version.run_id,
    }


def family_overview(ws: Workspace, family: str) -> dict[str, Any]:
    """One family: versions (newest first), champion history and recent drift checks."""
    client = mlflow_client(ws)
    check_family_exists(client, family)
    model = client.get_registered_model(family)
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = client.search_model_versions(f"name='{family}'", max_results=1000)
    rows = sorted((_version_row(v, aliases) for v in versions), key=lambda r: -int(r["version"]))
    experiment = client.get_experiment_by_name(family)
    checks = []
    if experiment is not None:
        for run in client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{KIND_TAG}` = 'drift_check'",
            order_by=["start_time DESC"],
            max_results=DRIFT_CHECKS_SHOWN,
        ):
            checks.append(
                {
                    "run_id": run.info.run_id,
                    "experiment_id": experiment.experiment_id,
                    "at": run.info.start_time / 1000,
                    "status": run.data.tags.get(DRIFT_STATUS_TAG, ""),
                    "share_drifted": run.data.metrics.get("share_drifted"),
                }
            )
    return {
        "family": family,
        "versions": rows,
        "champion_history": champion_history(client, family),
        "drift_checks": checks,
        "gate": _stored_gate(model.tags, family),
    }


def _stored_gate(tags: dict[str, str], family: str) -> dict[str, Any]:
    """The family's stored gate settings, or the error that makes them unreadable (shown, not raised:
    the page must still open to let a person see and fix the family)."""
    from dataclasses import asdict

    from automl_tasks.core.errors import ConfigurationError

    try:
        return asdict(GateConfig.from_tags(tags, family))
    except ConfigurationError as exc:
        return {"error": str(exc)}
