"""drift_check's tick waits for the workspace's first family."""

from __future__ import annotations

from dataclasses import replace

from automl_tasks.core.tracking import mlflow_client
from automl_tasks.monitoring.schedule_gate import has_model_family


def test_no_family_until_one_is_registered(workspace):
    assert not has_model_family(workspace)
    assert not (workspace.home / "mlflow" / "mlflow.db").exists(), "the check created the store"
    client = mlflow_client(workspace)
    client.search_experiments()  # the store exists, its registry is empty
    assert not has_model_family(workspace)
    client.create_registered_model("fam")
    assert has_model_family(workspace)


def test_other_stores_keep_the_tick(workspace):
    assert has_model_family(replace(workspace, mlflow_uri="postgresql://u@h/db"))
