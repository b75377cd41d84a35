"""The pipelines' teardown closes the MLflow runs a DAG run left RUNNING, and only those."""

from __future__ import annotations

from automl_tasks.core.tags import DAG_RUN_TAG, ERROR_TAG
from automl_tasks.core.tracking import close_open_runs, ensure_experiment, mlflow_client


def test_runs_left_running_by_a_dag_run_are_marked_failed_and_others_are_untouched(workspace):
    client = mlflow_client(workspace)
    experiment = ensure_experiment(workspace, "fam")
    parent = client.create_run(experiment, run_name="pipeline", tags={DAG_RUN_TAG: "run-1"}).info.run_id
    final = client.create_run(experiment, tags={DAG_RUN_TAG: "run-1", "mlflow.parentRunId": parent}).info.run_id
    child = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id  # a trial, killed
    done = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    client.set_terminated(done, status="FINISHED")
    other = client.create_run(experiment, tags={DAG_RUN_TAG: "run-2"}).info.run_id  # another, live DAG run

    closed = close_open_runs(workspace, "run-1", reason="DAG run run-1 was marked failed")

    assert sorted(closed) == sorted([parent, final, child])
    for run_id in closed:
        run = client.get_run(run_id)
        assert run.info.status == "FAILED" and run.data.tags[ERROR_TAG] == "DAG run run-1 was marked failed"
    assert client.get_run(done).info.status == "FINISHED"
    assert client.get_run(other).info.status == "RUNNING"
    assert close_open_runs(workspace, "run-1", reason="again") == []  # idempotent: a retried teardown is harmless
