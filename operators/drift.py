"""Tasks of the drift_check and drift_retrain DAGs; thin calls into `automl_tasks`."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Asset, TriggerRule, get_current_context, task

from automl_tasks.pipelines.forms import RETRAIN_OVERRIDES
from operators._runtime import parent_run_closed_on_failure, user_errors_fail_fast, workspace
from operators.search_stage import worker_slots

log = logging.getLogger(__name__)

#: one event per checked family; its `extra` is the verdict (family, status, reasons, MLflow run)
DRIFT_ASSET = Asset(name="loopml_drift_check", uri="loopml://drift_check", group="loopml")

#: drift_check form keys that are drift settings (None/empty = the family's own setting)
SETTING_KEYS = (
    "enabled",
    "check_every_hours",
    "window_hours",
    "min_rows",
    "drift_share",
    "column_threshold",
    "performance_drop",
    "auto_retrain",
)


@task(task_id="select_families")
def select_families() -> list[str]:
    """The form's family, or (scheduled run) every family whose check is enabled and due."""
    params = get_current_context()["params"]
    with user_errors_fail_fast():
        from automl_tasks.families.aliases import check_family_name
        from automl_tasks.monitoring.drift_check import monitored_families

        if params.get("family"):
            return [check_family_name(params["family"])]
        families = monitored_families(workspace())
    if not families:
        log.info("no model family is due for a drift check; nothing to do")
    return families


@task(task_id="check_drift", outlets=[DRIFT_ASSET], map_index_template="{{ checked_family }}")
def check_drift(family: str) -> dict[str, Any]:
    """Evidently drift report for one family; the verdict goes to MLflow and the asset event."""
    context = get_current_context()
    context["checked_family"] = family  # type: ignore[typeddict-unknown-key]  # names the mapped instance in the UI
    params = context["params"]
    overrides = {k: params.get(k) for k in SETTING_KEYS}
    with user_errors_fail_fast():
        from automl_tasks.core.tracking import mlflow_client
        from automl_tasks.monitoring.drift_check import check_drift as run_check
        from automl_tasks.monitoring.drift_settings import save_family_settings

        ws = workspace()
        if params.get("save_settings"):
            saved = save_family_settings(mlflow_client(ws), family, overrides)
            log.info("saved drift settings of %s: %s", family, saved)
        result = run_check(
            ws, family, dag_run_id=context["run_id"], overrides=overrides, data_path=params.get("data_path") or ""
        )
    context["outlet_events"][DRIFT_ASSET].extra = {
        k: v for k, v in result.to_dict().items() if k in ("family", "status", "reasons", "mlflow_run_id", "window_uri")
    }
    return result.to_dict()


@task(task_id="retrain_requests")
def retrain_requests(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One drift_retrain configuration per drifted family whose settings allow a retrain."""
    params = get_current_context()["params"]
    requests = []
    for result in results:
        if result["status"] != "drift":
            log.info("%s: %s; no retrain", result["family"], result["status"].replace("_", " "))
            continue
        if not result["settings"]["auto_retrain"]:
            log.warning("%s drifted but auto_retrain is off: retrain it by hand", result["family"])
            continue
        if result.get("modality") == "text":
            log.warning(
                "%s drifted; it is a text family, which drift_retrain (tables) cannot retrain: run "
                "large_model_adaptation on recent labelled texts (the drifted window is %s)",
                result["family"],
                result["window_uri"],
            )
            continue
        requests.append(
            {
                "family": result["family"],
                "window_uri": result["window_uri"],
                "reason": "; ".join(result["reasons"]),
                **{k: params[k] for k in RETRAIN_OVERRIDES if params.get(k) is not None},
            }
        )
    log.info("drift_retrain will run for: %s", [r["family"] for r in requests] or "no family")
    return requests


# ---- drift_notify --------------------------------------------------------------------


@task(task_id="notify")
def notify_drift() -> list[dict[str, Any]]:
    """One log line per drift-check verdict that triggered this run (the asset events' `extra`).

    The place to hang a team's notification (mail, chat): it runs on every check, drift or not.
    """
    events = get_current_context()["triggering_asset_events"][DRIFT_ASSET]
    verdicts = [dict(event.extra or {}) for event in events]
    for verdict in verdicts:
        status = str(verdict.get("status", "unknown"))
        line = f"drift check of {verdict.get('family')}: {status.replace('_', ' ')}"
        reasons = "; ".join(verdict.get("reasons") or [])
        if status == "drift":
            log.warning("%s: %s (MLflow run %s)", line, reasons, verdict.get("mlflow_run_id"))
        else:
            log.info("%s%s", line, f": {reasons}" if reasons else "")
    return verdicts


# ---- drift_retrain -------------------------------------------------------------------


@task(task_id="start")
def retrain_start() -> dict[str, Any]:
    """Check the drift_retrain form before any work."""
    params = get_current_context()["params"]
    with user_errors_fail_fast():
        from automl_tasks.pipelines.retrain import RetrainRequest

        request = RetrainRequest.from_conf({k: params[k] for k in RetrainRequest.__dataclass_fields__ if k in params})
    log.info("retrain request: %s", {k: v for k, v in request.to_dict().items() if k != "search_space"})
    return request.to_dict()


@task(task_id="prepare_data", retries=0)
def prepare_data(request: dict[str, Any]) -> dict[str, Any]:
    """Great Expectations checks, reference + recent rows as a new DVC version, held-out evaluation rows."""
    run_id = get_current_context()["run_id"]
    with user_errors_fail_fast():
        from automl_tasks.pipelines.retrain import RetrainRequest, prepare_retrain_data

        return prepare_retrain_data(workspace(), RetrainRequest(**request), dag_run_id=run_id).to_dict()


@task(task_id="plan_search")
def plan_retrain_search(request: dict[str, Any], pre: dict[str, Any]) -> list[Any]:
    """A study warm-started from the champion's study; returns the worker slots."""
    from automl_tasks.pipelines.retrain import RetrainIntake, RetrainRequest
    from automl_tasks.pipelines.retrain import plan_retrain_search as plan
    from operators.nocode import study_name_for

    with parent_run_closed_on_failure(pre["parent_run_id"]), user_errors_fail_fast():
        req = RetrainRequest(**request)
        ws = workspace()
        summary = plan(ws, req, RetrainIntake.from_dict(pre, ws), study_name_for(pre))
    log.info("retrain search planned: %s", summary)
    return worker_slots(study_name_for(pre), req.n_workers)


@task(task_id="task_estimator", trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
def retrain_task_estimator(pre: dict[str, Any]) -> dict[str, Any]:
    """Final training and registration as `challenger`, lineage to the champion it replaces."""
    from automl_tasks.pipelines.registration import train_and_register
    from operators.nocode import study_name_for

    run_id = get_current_context()["run_id"]
    with parent_run_closed_on_failure(pre["parent_run_id"]), user_errors_fail_fast():
        result = train_and_register(
            workspace(),
            study_name_for(pre),
            dag_run_id=run_id,
            dataset_version=pre["dataset_version"],
            parent_version=pre["parent_version"],
            auto_promote=False,
            pipeline="drift_retrain",
        )
    return result.to_dict()


@task(task_id="promotion_gate")
def retrain_gate(request: dict[str, Any], pre: dict[str, Any], registered: dict[str, Any]) -> dict[str, Any]:
    """Champion and challenger scored on the held-out recent rows; the gate decides."""
    from automl_tasks.pipelines.retrain import RetrainRequest, gate_on_recent_data

    run_id = get_current_context()["run_id"]
    with parent_run_closed_on_failure(pre["parent_run_id"]), user_errors_fail_fast():
        decision = gate_on_recent_data(
            workspace(),
            registered["family"],
            registered["version"],
            pre["eval_uri"],
            gate=RetrainRequest(**request).gate(),
            triggered_by=f"drift_retrain run {run_id}",
        )
    log.info(
        "%s v%s %s: %s",
        decision["family"],
        decision["version"],
        "PROMOTED to champion" if decision["promoted"] else "stays challenger",
        decision["reason"],
    )
    return decision


@task(task_id="end")
def retrain_end(pre: dict[str, Any], registered: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """Close the MLflow run and say what changed."""
    from automl_tasks.pipelines.intake import finish_parent_run

    finish_parent_run(workspace(), pre["parent_run_id"])
    summary = {
        "family": registered["family"],
        "version": registered["version"],
        "parent_version": pre["parent_version"],
        "promoted": decision["promoted"],
        "champion": decision.get("champion"),
        "reason": decision["reason"],
        "dataset_uri": pre["dataset_uri"],
        "eval_uri": pre["eval_uri"],
        "mlflow_run_id": pre["parent_run_id"],
        "warning": registered.get("warning", ""),
    }
    if summary["warning"]:
        log.warning("ATTENTION: %s", summary["warning"])
    log.info(
        "family %s: v%s retrained from v%s on %s; %s. Serving endpoints follow the champion alias by themselves.",
        summary["family"],
        summary["version"],
        summary["parent_version"],
        summary["dataset_uri"],
        f"promoted to champion ({decision['reason']})"
        if decision["promoted"]
        else f"not promoted ({decision['reason']})",
    )
    return summary
