"""A trial's MLflow child run is never left RUNNING, even when its logging is interrupted."""

from __future__ import annotations

import pytest

from automl_tasks.core.tracking import ensure_experiment, log_child_run, mlflow_client


class Terminated(BaseException):
    """What Airflow raises in a task it terminates (not an Exception: nothing swallows it)."""


def test_a_child_run_interrupted_while_logging_is_killed_not_left_running(workspace, monkeypatch):
    from mlflow import MlflowClient

    experiment = ensure_experiment(workspace, "tracking")
    parent = mlflow_client(workspace).create_run(experiment).info.run_id

    def interrupted(self, *args, **kwargs):
        raise Terminated("the task was terminated")

    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "log_batch", interrupted)
        with pytest.raises(Terminated):
            log_child_run(
                workspace, experiment_id=experiment, parent_run_id=parent, name="t", params={}, metrics={}, tags={}
            )
    logged = log_child_run(
        workspace,
        experiment_id=experiment,
        parent_run_id=parent,
        name="u",
        params={"a": 1},
        metrics={"m": 0.5},
        tags={},
    )
    children = mlflow_client(workspace).search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert {r.info.run_name: r.info.status for r in children} == {"t": "KILLED", "u": "FINISHED"}
    assert next(r for r in children if r.info.run_id == logged).data.metrics == {"m": 0.5}
