"""The teardown every pipeline ends with: no MLflow run of the DAG run stays RUNNING.

An Airflow teardown task runs however the DAG run ends: after success, after a failed
task, after a worker was killed, and after a user marked the run failed (Airflow leaves
teardown tasks to run then). It does not change the DAG run's state.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import get_current_context, task, teardown

from operators._runtime import workspace

log = logging.getLogger(__name__)


def close_mlflow_runs() -> Any:  # XComArg
    """The teardown task of a pipeline: put it after every other task of the DAG.

    Built afresh for every DAG: Airflow 3.3's teardown decorator sets the trigger rule in
    its own kwargs on the first call, so one module-level teardown task used by a second
    DAG file in the same process (the DAG processor parses them all) raises "Trigger rule
    not configurable for teardown tasks"."""
    return teardown(task(task_id="close_mlflow_runs")(_close_mlflow_runs))()


def _close_mlflow_runs() -> dict[str, Any]:
    """Mark FAILED the MLflow runs this DAG run left RUNNING (none after a clean ending)."""
    from automl_tasks.core.tracking import close_open_runs

    run_id = get_current_context()["run_id"]
    closed = close_open_runs(workspace(), run_id, reason=f"DAG run {run_id} ended without closing this run")
    log.info("closed %d MLflow run(s) left RUNNING: %s", len(closed), closed)
    return {"closed": closed}
