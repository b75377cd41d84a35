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


@task(task_id="promotion_gate", retries=0)
def promotion_gate() -> dict[str, Any]:
    """Promote (auto: through the gate; manual: forced) or roll back, as the form says."""
    from automl_tasks.families.promotion import GateConfig, promote, rollback

    context = get_current_context()
    params = context["params"]
    with user_errors_fail_fast():
        if params["action"] == "rollback":
            return rollback(workspace(), params["family"], triggered_by=_triggered_by(context))
        config = GateConfig(
            margin=float(params["margin"]),
            max_latency_ratio=float(params["max_latency_ratio"]),
            max_size_ratio=float(params["max_size_ratio"]),
        )
        result = promote(
            workspace(),
            params["family"],
            str(params["version"]),
            mode=params["action"],
            triggered_by=_triggered_by(context),
            config=config,
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
