"""MLflow access for loopml: one client per workspace, experiments per model family."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import DAG_RUN_TAG, ERROR_TAG, KIND_TAG

log = logging.getLogger(__name__)

_MAX_TAG = 4900


def mlflow_client(ws: Workspace):  # -> mlflow.MlflowClient
    """A client on the workspace's tracking + registry store (sets the URIs for mlflow.*)."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(ws.mlflow_uri)
    mlflow.set_registry_uri(ws.mlflow_uri)
    return _client(ws.mlflow_uri)


@functools.cache
def _client(uri: str):  # -> mlflow.MlflowClient
    """One client per store URI and process: building one opens and checks the database
    (~100 ms on SQLite), which showed up as latency spikes in the serving registry watch."""
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def download_artifact(ws: Workspace, run_id: str, artifact_path: str, dest: Path) -> Path:
    """Run `run_id`'s artifact `artifact_path` as the file `dest`, moved into place whole (a
    reader beside this process never sees half a file); raises MLflow's error when it is missing."""
    import tempfile

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as folder:
        Path(mlflow_client(ws).download_artifacts(run_id, artifact_path, folder)).replace(dest)
    return dest


def ensure_experiment(ws: Workspace, name: str) -> str:
    """Id of experiment `name`, created if new: with an artifact folder in the workspace, or,
    through a tracking server, where the server keeps artifacts (it proxies them)."""
    client = mlflow_client(ws)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if ws.mlflow_uri.startswith(("http://", "https://")) else (ws.mlflow_artifacts / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # another process created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def clean_params(params: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v)[:_MAX_TAG] for k, v in params.items()}


def log_child_run(
    ws: Workspace,
    *,
    experiment_id: str,
    parent_run_id: str,
    name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    status: str = "FINISHED",
) -> str:
    """Record one finished trial as a child run of the pipeline run (three store calls)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.time import get_current_time_millis

    client = mlflow_client(ws)
    run_id = client.create_run(
        experiment_id, run_name=name, tags={"mlflow.parentRunId": parent_run_id, **tags}
    ).info.run_id
    now = get_current_time_millis()
    ended = False
    try:
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in clean_params(params).items()],
            tags=[RunTag(KIND_TAG, "trial")],
        )
        client.set_terminated(run_id, status=status)
        ended = True
    finally:
        if not ended:  # interrupted (Airflow terminating the task, an error): never leave it RUNNING
            client.set_terminated(run_id, status="KILLED")
    return run_id


def close_open_runs(ws: Workspace, dag_run_id: str, *, reason: str) -> list[str]:
    """Mark FAILED every MLflow run of DAG run `dag_run_id` that is still RUNNING, and their
    RUNNING child runs; return their ids.

    A pipeline closes its own runs when it succeeds or a task fails cleanly; this is the
    net for the other endings (a run marked failed, a worker killed), called by the DAGs'
    teardown task."""
    from mlflow.entities import ViewType

    client = mlflow_client(ws)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL, max_results=1000)]
    if not experiments:
        return []

    def running(where: str) -> list:
        return client.search_runs(experiments, f"{where} and attributes.status = 'RUNNING'", max_results=1000)

    parents = running(f"tags.`{DAG_RUN_TAG}` = '{dag_run_id}'")
    children = [run for parent in parents for run in running(f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")]
    closed = []
    for run in {r.info.run_id: r for r in [*children, *parents]}.values():
        if ERROR_TAG not in run.data.tags:
            client.set_tag(run.info.run_id, ERROR_TAG, reason[:_MAX_TAG])
        client.set_terminated(run.info.run_id, status="FAILED")
        closed.append(run.info.run_id)
        log.warning(
            "MLflow run %s (%s) was still RUNNING: marked FAILED (%s)", run.info.run_id, run.info.run_name, reason
        )
    return closed
