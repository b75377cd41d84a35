"""Registry tasks: the promotion gate, rollback and batch inference over a dataset version."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import get_current_context, task

from operators._runtime import user_errors_fail_fast, workspace

log = logging.getLogger(__name__)


def _triggered_by(context: dict[str, Any]) -> str:
    run = context["dag_run"]
    user = getattr(run, "triggering_user_name", None) or "unknown user"
    return f"{user} via {run.dag_id} run {run.run_id}"


APPROVAL_TASK = "approve"
GATE_TASK = "promotion_gate"


@task.branch(task_id="needs_approval")
def needs_approval() -> list[str]:
    """A manual promotion waits for a person's approval; auto and rollback go straight on."""
    if get_current_context()["params"]["action"] == "manual":
        return [APPROVAL_TASK, GATE_TASK]
    return [GATE_TASK]


def approval() -> Any:
    """Airflow's human-in-the-loop approval of a manual promotion, answered in Airflow's
    "Required actions" view or its REST API; a rejection skips the promotion."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    return ApprovalOperator(
        task_id=APPROVAL_TASK,
        subject="Make version {{ params.version }} the champion of {{ params.family }}?",
        body=(
            "A manual promotion of **{{ params.family }}** version **{{ params.version }}**, asked by "
            "{{ dag_run.triggering_user_name or 'an unknown user' }}. On approval it becomes the champion "
            "whatever the promotion gate says; the gate's comparison with the current champion is "
            "recorded on the version (`loopml.promotion.*`), with who approved it and when."
        ),
    )


def _approval_record(context: dict[str, Any]) -> str:
    """'<name> at <time>' of the approval of this run's manual promotion."""
    answer = context["ti"].xcom_pull(task_ids=APPROVAL_TASK) or {}
    user = (answer.get("responded_by_user") or {}).get("name") or "unknown user"
    return f"{user} at {answer.get('responded_at', 'an unknown time')}"


@task(task_id=GATE_TASK, retries=0, trigger_rule="none_failed_min_one_success")
def promotion_gate() -> dict[str, Any]:
    """Promote (auto: through the gate; manual: forced, once approved) or roll back, as the form says."""
    from automl_tasks.families.promotion import GateConfig, promote, rollback, store_gate

    context = get_current_context()
    params = context["params"]
    with user_errors_fail_fast():
        if params["action"] == "rollback":
            return rollback(workspace(), params["family"], triggered_by=_triggered_by(context))
        config = GateConfig(
            margin=float(params["margin"]),
            max_latency_ratio=float(params["max_latency_ratio"]),
            max_size_ratio=float(params["max_size_ratio"]),
            max_attack_auc=float(params.get("max_attack_auc") or 0),
            min_robust_accuracy=float(params.get("min_robust_accuracy") or 0),
            max_dp_epsilon=float(params.get("max_dp_epsilon") or 0),
        )
        if params.get("save_gate"):
            store_gate(workspace(), params["family"], config)
        result = promote(
            workspace(),
            params["family"],
            str(params["version"]),
            mode=params["action"],
            triggered_by=_triggered_by(context),
            config=config,
            approved_by=_approval_record(context) if params["action"] == "manual" else "",
        )
    log.info("%s", result)
    return result


@task(task_id="batch_predict", retries=0)
def batch_predict() -> dict[str, Any]:
    """Predict a dataset version (or a file, stored as one first) with the family's model."""
    from automl_tasks.data import DatasetStore, read_table
    from automl_tasks.families.batch_inference import predict_dataset
    from automl_tasks.pipelines.intake import source_path

    params = get_current_context()["params"]
    ws = workspace()
    with user_errors_fail_fast():
        dataset = params["dataset"]
        if not dataset.startswith("dataset://"):
            path = source_path(ws, dataset)
            dataset = DatasetStore(ws.datasets, ws.dvc_remote).put(path.stem, read_table(path)).uri
        return predict_dataset(ws, params["family"], dataset, model=str(params["model"]))
