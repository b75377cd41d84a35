"""Drift check and drift retrain through the real Airflow stack.

One family (champion v1 trained on breast_cancer) goes through: an unshifted window (no
retrain; its asset event carries the verdict and runs drift_notify), a shifted and relabelled window (drift -> drift_retrain -> v2 with lineage,
promoted), a schema-breaking file (stopped at validation, nothing registered) and a
deliberately weak retrain (registered, not promoted). Each test brings its own data
(the unshifted check reads a file, not the shared inference log), so the order does not matter.
"""

from __future__ import annotations

import time

import pytest

from automl_tasks.core.tracking import mlflow_client
from automl_tasks.data import DatasetStore, bundled_frame
from automl_tasks.families.aliases import CHAMPION, current_alias_version
from loopml.drift_stream import like_reference, shifted
from tests.drift_helpers import log_requests
from tests.e2e.conftest import run_pipeline, states
from tests.family_builder import LIGHTGBM_SPACE, add_version

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAMILY = "drift_e2e"
# a single depth-1 tree on 5% of the columns: a model that cannot be good
WEAK_SPACE = """
params:
  - name: model
    type: string
    range: [random_forest]
    submodule:
      random_forest:
        - {name: n_estimators, type: int_cat, range: [1]}
        - {name: max_depth, type: int_cat, range: [1]}
        - {name: min_samples_leaf, type: int_cat, range: [100]}
        - {name: max_features, type: float_cat, range: [0.05]}
"""
# the guards are relaxed: a model that learns two regimes is bigger and slower, and a sub-ms
# latency ratio is noise (the guards themselves are tested in tests/unit/test_promotion.py)
RETRAIN = {"n_trials": 3, "n_workers": 2, "time_budget_s": 300, "max_size_ratio": 50.0, "max_latency_ratio": 50.0}


@pytest.fixture(scope="module")
def family(airflow, e2e_workspace):
    for dag_id in ("drift_check", "drift_retrain", "drift_notify"):
        airflow.wait_for_dag(dag_id)
        airflow.unpause(dag_id)
    add_version(e2e_workspace, FAMILY, n_trials=2, space=LIGHTGBM_SPACE, tag="drift-v1")
    return e2e_workspace


def _versions(ws) -> list[int]:
    return sorted(int(v.version) for v in mlflow_client(ws).search_model_versions(f"name='{FAMILY}'"))


def _retrain_runs(airflow) -> list[str]:
    runs = airflow._call("GET", "/api/v2/dags/drift_retrain/dagRuns", params={"limit": 100})["dag_runs"]
    return [r["dag_run_id"] for r in runs if (r.get("conf") or {}).get("family") == FAMILY]


def _notified(airflow, mlflow_run_id: str, timeout_s: float = 180) -> dict:
    """The verdict drift_notify reported for the check that logged `mlflow_run_id` (waits for it)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        runs = airflow._call("GET", "/api/v2/dags/drift_notify/dagRuns", params={"limit": 100})["dag_runs"]
        for run in runs:
            if run["state"] != "success":
                continue
            for verdict in airflow.xcom("drift_notify", run["dag_run_id"], "notify"):
                if verdict.get("mlflow_run_id") == mlflow_run_id:
                    return verdict
        time.sleep(2)
    raise AssertionError(f"no successful drift_notify run reported {mlflow_run_id} within {timeout_s:.0f}s")


def test_unshifted_window_is_no_drift_and_no_retrain(airflow, family, tmp_path):
    path = tmp_path / "calm.csv"
    like_reference(bundled_frame("breast_cancer"), 300, seed=1).to_csv(path, index=False)
    run_id, state = run_pipeline(
        airflow, {"family": FAMILY, "data_path": str(path)}, dag_id="drift_check", timeout_s=300
    )
    task_states = states(airflow, run_id, "drift_check")
    assert state == "success", task_states
    result = airflow.xcom("drift_check", run_id, "check_drift", map_index=0)
    assert result["status"] == "no_drift", result["reasons"]
    assert task_states["trigger_retrain"] == "skipped"
    assert _retrain_runs(airflow) == []
    log = airflow.task_log("drift_check", run_id, "retrain_requests", 1)
    assert f"{FAMILY}: no drift; no retrain" in log

    # the DAG scheduled on the asset runs, and the asset event carries the verdict in its extra.
    # The event is read after drift_notify's run finished: Airflow 3.3.2's events endpoint
    # answers 500 while a run the event created is still queued, a window the scheduler leaves
    # open between committing a new asset-triggered run and starting it (the response model
    # requires the run's start_date: apache/airflow#71360, fixed upstream by #71379).
    notified = _notified(airflow, result["mlflow_run_id"])
    assert notified["family"] == FAMILY and notified["status"] == "no_drift"
    events = airflow._call(
        "GET", "/api/v2/assets/events", params={"source_dag_id": "drift_check", "source_run_id": run_id}
    )["asset_events"]
    assert [e["extra"]["family"] for e in events] == [FAMILY]
    assert events[0]["extra"]["status"] == "no_drift"
    assert events[0]["extra"]["mlflow_run_id"] == result["mlflow_run_id"]


def test_shifted_window_retrains_a_new_version_with_lineage(airflow, family):
    log_requests(family, FAMILY, shifted(bundled_frame("breast_cancer"), "target", 400, seed=2), labels=True)
    run_id, state = run_pipeline(airflow, {"family": FAMILY, **RETRAIN}, dag_id="drift_check", timeout_s=300)
    assert state == "success", states(airflow, run_id, "drift_check")
    result = airflow.xcom("drift_check", run_id, "check_drift", map_index=0)
    assert result["status"] == "drift" and result["performance"]["drop"] > 0.05, result
    retrain_id = airflow.xcom("drift_check", run_id, "trigger_retrain", key="trigger_run_id", map_index=0)
    assert _retrain_runs(airflow) == [retrain_id]
    state = airflow.wait_for_run("drift_retrain", retrain_id, timeout_s=900)
    task_states = states(airflow, retrain_id, "drift_retrain")
    assert state == "success", task_states
    summary = airflow.xcom("drift_retrain", retrain_id, "end")
    assert summary["family"] == FAMILY and summary["parent_version"] == "1" and summary["version"] == "2"
    client = mlflow_client(family)
    new = client.get_model_version(FAMILY, "2")
    assert new.tags["loopml.parent_version"] == "1"
    assert new.tags["loopml.dataset_uri"].startswith("dataset://breast_cancer@")
    assert new.tags["loopml.dataset_uri"] != client.get_model_version(FAMILY, "1").tags["loopml.dataset_uri"]
    assert summary["promoted"], summary["reason"]
    assert current_alias_version(client, FAMILY, CHAMPION) == "2"
    plan_log = airflow.task_log("drift_retrain", retrain_id, "plan_search", 1)
    assert "warm-start configurations from study" in plan_log


def test_schema_breaking_data_stops_at_validation(airflow, family, tmp_path):
    broken = shifted(bundled_frame("breast_cancer"), "target", 200, seed=3).drop(columns=["mean_radius"])
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    champion, versions = current_alias_version(mlflow_client(family), FAMILY, CHAMPION), _versions(family)
    datasets = DatasetStore(family.datasets, family.dvc_remote).versions("breast_cancer")
    run_id, state = run_pipeline(
        airflow, {"family": FAMILY, "data_path": str(path), **RETRAIN}, dag_id="drift_retrain", timeout_s=300
    )
    task_states = states(airflow, run_id, "drift_retrain")
    assert state == "failed" and task_states["prepare_data"] == "failed", task_states
    log = airflow.task_log("drift_retrain", run_id, "prepare_data", 1)
    assert str(path) in log and "column 'mean_radius': rule column_exists" in log
    assert _versions(family) == versions
    assert current_alias_version(mlflow_client(family), FAMILY, CHAMPION) == champion
    assert DatasetStore(family.datasets, family.dvc_remote).versions("breast_cancer") == datasets


def test_a_worse_retrained_model_is_registered_but_not_promoted(airflow, family, tmp_path):
    fresh = like_reference(bundled_frame("breast_cancer"), 300, seed=4)
    path = tmp_path / "fresh.parquet"
    fresh.to_parquet(path)
    champion = current_alias_version(mlflow_client(family), FAMILY, CHAMPION)
    conf = {"family": FAMILY, "data_path": str(path), "search_space": WEAK_SPACE, **RETRAIN}
    run_id, state = run_pipeline(airflow, conf, dag_id="drift_retrain", timeout_s=900)
    assert state == "success", states(airflow, run_id, "drift_retrain")
    summary = airflow.xcom("drift_retrain", run_id, "end")
    assert not summary["promoted"] and "not above margin" in summary["reason"], summary
    client = mlflow_client(family)
    assert current_alias_version(client, FAMILY, CHAMPION) == champion
    assert current_alias_version(client, FAMILY, "challenger") == summary["version"]
    assert client.get_model_version(FAMILY, summary["version"]).tags["loopml.parent_version"] == champion


MLP_FAMILY = "drift_mlp_e2e"
# the demo's first search forced to the torch MLP (issue #18: its retrain failed to load in ONNX Runtime)
MLP_SPACE = """
params:
  - name: model
    type: string
    range: [mlp]
    submodule:
      mlp:
        - {name: hidden_units, type: int_cat, range: [16]}
        - {name: n_layers, type: int_cat, range: [1]}
        - {name: epochs, type: int_cat, range: [15]}
"""


def test_demo_with_an_mlp_champion_then_the_drift_loop_closes(airflow, e2e_workspace):
    """The README's order on one workspace: the demo's NoCode run (an MLP champion) and
    its one unlabelled query, then shifted traffic with feedback labels, drift_check and
    drift_retrain. The unlabelled row turned the window's labels into floats, and the
    retrained MLP's ONNX file could not be loaded, so drift_retrain failed."""
    for dag_id in ("drift_check", "drift_retrain"):
        airflow.wait_for_dag(dag_id)
        airflow.unpause(dag_id)
    conf = {
        "dataset": "breast_cancer",
        "family": MLP_FAMILY,
        "n_trials": 1,
        "n_workers": 1,
        "search_space": MLP_SPACE,
    }
    run_id, state = run_pipeline(airflow, conf)
    assert state == "success", states(airflow, run_id)
    ws = e2e_workspace
    reference = bundled_frame("breast_cancer")
    log_requests(ws, MLP_FAMILY, reference.head(1), labels=False)  # `loopml demo` queries once, no feedback
    log_requests(ws, MLP_FAMILY, shifted(reference, "target", 400, seed=2), labels=True)

    retrain = {"n_trials": 1, "n_workers": 1, "time_budget_s": 300, "max_size_ratio": 50.0, "max_latency_ratio": 50.0}
    check_id, state = run_pipeline(airflow, {"family": MLP_FAMILY, **retrain}, dag_id="drift_check", timeout_s=300)
    assert state == "success", states(airflow, check_id, "drift_check")
    assert airflow.xcom("drift_check", check_id, "check_drift", map_index=0)["status"] == "drift"
    retrain_id = airflow.xcom("drift_check", check_id, "trigger_retrain", key="trigger_run_id", map_index=0)
    state = airflow.wait_for_run("drift_retrain", retrain_id, timeout_s=900)
    assert state == "success", states(airflow, retrain_id, "drift_retrain")
    from automl_tasks.core.tags import RUNTIME_TAG
    from automl_tasks.deploy.runtime import ONNX_RUNTIME
    from automl_tasks.estimators.features import feature_frame
    from automl_tasks.families.loading import load_predictor

    summary = airflow.xcom("drift_retrain", retrain_id, "end")
    new = mlflow_client(ws).get_model_version(MLP_FAMILY, summary["version"])
    assert new.tags[RUNTIME_TAG] == ONNX_RUNTIME, new.tags
    predictor = load_predictor(ws, MLP_FAMILY, summary["version"])
    assert predictor.runtime == ONNX_RUNTIME
    labels, _ = predictor.predict_fn(feature_frame(reference.head(5), predictor.schema))
    assert {type(v) for v in labels.tolist()} == {int}  # breast_cancer's target is int
