"""The HPO DAG through the real Airflow stack: smoke, default and search branches, and
the advisor's search-vs-default verdict; a broken algorithm stops at the smoke test."""

from __future__ import annotations

import pytest

from automl_tasks.core.tracking import mlflow_client
from tests.e2e.conftest import run_pipeline, states

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def hpo(airflow):
    airflow.wait_for_dag("hpo_pipeline")
    airflow.unpause("hpo_pipeline")
    return airflow


def test_hpo_runs_smoke_default_and_search_and_compares_them(hpo, e2e_workspace):
    conf = {"dataset": "wine", "family": "wine_hpo", "n_trials": 4, "n_workers": 2, "repeats": 2, "strategy": "random"}
    run_id, state = run_pipeline(hpo, conf, dag_id="hpo_pipeline", timeout_s=900)
    task_states = states(hpo, run_id, "hpo_pipeline")
    assert state == "success", task_states
    for branch in ("smoke", "default", "search"):
        assert task_states[f"{branch}.job_estimator"] == "success"
        assert task_states[f"{branch}.workers[0]"] == "success"
    assert task_states["search.workers[1]"] == "success" and "default.workers[1]" not in task_states
    summary = hpo.xcom("hpo_pipeline", run_id, "end")
    verdict = summary["search_vs_default"]
    assert verdict["repeats"] == 2 and verdict["search_trials"] >= conf["n_trials"]
    assert isinstance(verdict["worth_it"], bool) and "split seeds" in verdict["verdict"]
    assert summary["family"] == "wine_hpo" and summary["version"] == "1"
    parent = mlflow_client(e2e_workspace).get_run(summary["mlflow_run_id"])
    assert parent.data.tags["loopml.kind"] == "hpo_pipeline"
    assert {"default_score", "search_best_score", "improvement_mean", "improvement_se"} <= set(parent.data.metrics)
    smoke_log = hpo.task_log("hpo_pipeline", run_id, "smoke_report", 1)
    assert "smoke test passed" in smoke_log


def test_a_broken_algorithm_stops_at_the_smoke_test(hpo, e2e_workspace):
    conf = {"algorithm": "broken_example", "dataset": "breast_cancer", "family": "broken_hpo", "n_trials": 4}
    run_id, state = run_pipeline(hpo, conf, dag_id="hpo_pipeline", timeout_s=600)
    task_states = states(hpo, run_id, "hpo_pipeline")
    assert state == "failed" and task_states["smoke_report"] == "failed", task_states
    assert task_states["search.plan"] == "upstream_failed" and task_states["task_estimator"] == "skipped"
    log = hpo.task_log("hpo_pipeline", run_id, "smoke_report", 1)
    assert "'broken_example' is not searchable" in log and "non-finite value nan" in log
    versions = mlflow_client(e2e_workspace).search_model_versions("name='broken_hpo'")
    assert list(versions) == []
