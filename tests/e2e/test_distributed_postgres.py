"""Distributed mode on a real PostgreSQL (started on loopback by the test harness):
4 concurrent workers evaluate every trial exactly once, as plain processes and through
Airflow with its metadata DB and the Optuna storage on PostgreSQL (LocalExecutor,
parallelism 16)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from automl_tasks.data import bundled_frame
from automl_tasks.search import load_study, start_search
from automl_tasks.settings import Workspace
from loopml.airflow_client import AirflowClient
from loopml.embedded import ensure_stack
from tests.e2e.conftest import run_pipeline, states
from tests.family_builder import LINEAR_SPACE
from tests.postgres_server import postgres_server
from tests.unit.test_search_engine import make_plan

pytestmark = [pytest.mark.slow]  # only the pipeline test goes through Airflow (marked e2e)

REPO = Path(__file__).resolve().parents[2]
FAST_SLEEPY = """
params:
  - {name: x, type: float, range: [0, 1]}
  - {name: sleep_s, type: float_cat, range: [0.5]}
"""
WORKER = (
    "import json; from dataclasses import asdict; from automl_tasks.search import run_worker; "
    "from automl_tasks.settings import Workspace; "
    "print(json.dumps(asdict(run_worker(Workspace.from_env(), {name!r}, {index}))))"
)


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


def _on_postgres(ws: Workspace, url: str) -> Workspace:
    return dataclasses.replace(ws, optuna_uri=url.replace("postgresql://", "postgresql+psycopg2://"))


def test_four_worker_processes_evaluate_every_trial_once(postgres, tmp_path):
    ws = _on_postgres(Workspace.at(tmp_path / "ws").ensure(), postgres.create_database("optuna_procs"))
    plan, space = make_plan(
        ws,
        bundled_frame("breast_cancer"),
        n_trials=24,
        name="pg-procs",
        space=FAST_SLEEPY,
        space_yaml=FAST_SLEEPY,
        algorithm="tests.sleepy_estimator:SleepyEstimator",
        min_trial_timeout_s=600,
        time_budget_s=300,
    )
    start_search(ws.optuna_uri, plan, space)
    env = {**os.environ, **ws.env(), "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER.format(name=plan.study_name, index=i)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    summaries = [json.loads(w.communicate(timeout=300)[0].strip().splitlines()[-1]) for w in workers]
    study, _ = load_study(ws.optuna_uri, plan.study_name)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.number for t in complete) == list(range(24)), "a trial was lost or numbered twice"
    assert sum(s["evaluated"] for s in summaries) == 24, summaries  # each trial evaluated by exactly one worker
    assert all(s["discarded"] == 0 and s["failed"] == 0 for s in summaries), summaries
    assert all(s["evaluated"] >= 2 for s in summaries), f"the work was not shared: {summaries}"


@pytest.mark.e2e
def test_nocode_pipeline_on_postgres_with_four_workers(postgres, tmp_path, monkeypatch):
    ws = _on_postgres(Workspace.at(tmp_path / "ws").ensure(), postgres.create_database("optuna_airflow"))
    airflow_db = postgres.create_database("airflow").replace("postgresql://", "postgresql+psycopg2://")
    monkeypatch.setenv("LOOPML_AIRFLOW_DB_URI", airflow_db)
    monkeypatch.setenv("LOOPML_OPTUNA_URI", ws.optuna_uri)
    monkeypatch.setenv("LOOPML_DRIFT_SCHEDULE", "none")
    stack = ensure_stack(ws, port=18095)
    try:
        client = AirflowClient(stack.url)
        client.wait_for_dag("nocode_pipeline")
        client.unpause("nocode_pipeline")
        conf = {
            "dataset": "breast_cancer",
            "n_trials": 12,
            "n_workers": 4,
            "search_space": LINEAR_SPACE,
            "family": "pg_family",
            "time_budget_s": 600,
        }
        run_id, state = run_pipeline(client, conf, timeout_s=900)
        task_states = states(client, run_id)
        assert state == "success", task_states
        assert [task_states[f"workers[{i}]"] for i in range(4)] == ["success"] * 4
        summaries = [client.xcom("nocode_pipeline", run_id, "workers", map_index=i) for i in range(4)]
        assert sum(s["evaluated"] for s in summaries) == 12 and all(s["discarded"] == 0 for s in summaries)
        import optuna

        studies = optuna.get_all_study_summaries(ws.optuna_uri)
        (study_name,) = [s.study_name for s in studies if s.study_name.startswith("pg_family-")]
        study, _ = load_study(ws.optuna_uri, study_name)
        assert sorted(t.number for t in study.get_trials(states=(TrialState.COMPLETE,))) == list(range(12))
    finally:
        stack.stop()
