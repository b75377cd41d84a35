"""Distributed mode on a real PostgreSQL (started on loopback by the test harness):
4 concurrent workers evaluate every trial exactly once, as plain processes and through
Airflow with all three stores on PostgreSQL (Airflow's metadata DB, the Optuna storage,
MLflow's tracking and registry store; LocalExecutor, parallelism 16), and 6 promotion
processes of 6 separate workspaces ("machines") racing on one family stay serialised by
the PostgreSQL advisory lock."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from automl_tasks.core.settings import Workspace
from automl_tasks.data import bundled_frame
from automl_tasks.search import load_study, start_search
from loopml.airflow_client import AirflowClient
from loopml.embedded import ensure_stack
from tests.e2e.conftest import run_pipeline, states
from tests.family_builder import LINEAR_SPACE
from tests.postgres_server import postgres_server
from tests.unit.test_search_engine import sleepy_plan
from tests.worker_processes import start_python, start_worker, worker_summary

pytestmark = [pytest.mark.slow]  # only the pipeline test goes through Airflow (marked e2e)

FAST_SLEEPY = """
params:
  - {name: x, type: float, range: [0, 1]}
  - {name: sleep_s, type: float_cat, range: [0.5]}
"""
#: promotes `version` once a go-file exists (so all six start together), prints the decision
PROMOTER = """
import json, os, time
from automl_tasks.families.promotion import promote
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tracking import mlflow_client
ws = Workspace.from_env()
mlflow_client(ws).get_registered_model({family!r})  # connected and warm before the start
print("ready", flush=True)
while not os.path.exists({go!r}):
    time.sleep(0.005)
print(json.dumps(promote(ws, {family!r}, {version!r}, mode="manual", triggered_by="proc-{version}")), flush=True)
"""


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


def _psycopg2(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://")


def _on_postgres(ws: Workspace, optuna_url: str, mlflow_url: str) -> Workspace:
    return dataclasses.replace(ws, optuna_uri=_psycopg2(optuna_url), mlflow_uri=_psycopg2(mlflow_url))


def test_four_worker_processes_evaluate_every_trial_once(postgres, tmp_path):
    ws = _on_postgres(
        Workspace.at(tmp_path / "ws").ensure(),
        postgres.create_database("optuna_procs"),
        postgres.create_database("mlflow_procs"),
    )
    plan, space = sleepy_plan(
        ws, bundled_frame("breast_cancer"), space=FAST_SLEEPY, n_trials=24, name="pg-procs", time_budget_s=300
    )
    start_search(ws.optuna_uri, plan, space)
    workers = [start_worker(ws, plan.study_name, i, stdout=subprocess.PIPE, text=True) for i in range(4)]
    summaries = [worker_summary(w, timeout=300) for w in workers]
    study, _ = load_study(ws.optuna_uri, plan.study_name)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.number for t in complete) == list(range(24)), "a trial was lost or numbered twice"
    assert sum(s["evaluated"] for s in summaries) == 24, summaries  # each trial evaluated by exactly one worker
    assert all(s["discarded"] == 0 and s["failed"] == 0 for s in summaries), summaries
    assert all(s["evaluated"] >= 2 for s in summaries), f"the work was not shared: {summaries}"


@pytest.mark.e2e
def test_nocode_pipeline_on_postgres_with_four_workers(postgres, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("LOOPML_AIRFLOW_DB_URI", _psycopg2(postgres.create_database("airflow")))
    monkeypatch.setenv("LOOPML_OPTUNA_URI", _psycopg2(postgres.create_database("optuna_airflow")))
    monkeypatch.setenv("LOOPML_MLFLOW_URI", _psycopg2(postgres.create_database("mlflow_airflow")))
    monkeypatch.setenv("LOOPML_DRIFT_SCHEDULE", "none")
    ws = Workspace.from_env().ensure()  # the settings the CLI and every task read
    assert ws.mlflow_uri.startswith("postgresql") and ws.optuna_uri.startswith("postgresql")
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
        # MLflow's runs and registry are in PostgreSQL: the version is there, no SQLite store was made
        client = MlflowClient(tracking_uri=ws.mlflow_uri, registry_uri=ws.mlflow_uri)
        assert [str(v.version) for v in client.search_model_versions("name = 'pg_family'")] == ["1"]
        (experiment,) = [e for e in client.search_experiments() if e.name == "pg_family"]
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        assert len([r for r in runs if r.data.tags.get("loopml.kind") == "trial"]) == 12
        assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"], "a pipeline run was left RUNNING"
        assert not (ws.home / "mlflow" / "mlflow.db").exists()
    finally:
        stack.stop()


def test_six_promotion_processes_on_six_machines_stay_serialised(postgres, tmp_path):
    """Six processes, each with its own workspace folder (so no shared file lock, as on six
    machines) and the one PostgreSQL registry, promote six versions at the same instant.
    Each promotion must see the one before it: the history is a chain, the aliases match."""
    from automl_tasks.families.aliases import current_alias_version
    from automl_tasks.families.promotion import champion_history, promote

    registry = _psycopg2(postgres.create_database("mlflow_race"))
    ws = dataclasses.replace(Workspace.at(tmp_path / "ws0").ensure(), mlflow_uri=registry)
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    family = "race_pg"
    client.create_registered_model(family)
    source = (tmp_path / "model").as_uri()
    versions = [str(client.create_model_version(family, source).version) for _ in range(7)]
    base, racers = versions[0], versions[1:]
    promote(ws, family, base, mode="manual", triggered_by="setup")

    go = tmp_path / "go"
    processes = [
        start_python(
            PROMOTER.format(family=family, version=v, go=str(go)),
            dataclasses.replace(Workspace.at(tmp_path / f"machine{i}").ensure(), mlflow_uri=registry),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, v in enumerate(racers)
    ]
    try:
        for p in processes:  # wait until every racer is connected, then start them together
            assert p.stdout.readline().strip() == "ready", p.stderr.read()[-3000:]
        go.touch()
        decisions = []
        for p in processes:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-3000:]
            decisions.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    assert all(d["promoted"] for d in decisions), decisions

    history = champion_history(client, family)
    assert history[0] == base and sorted(history[1:], key=int) == sorted(racers, key=int), history
    assert current_alias_version(client, family, "champion") == history[-1]
    assert current_alias_version(client, family, "previous_champion") == history[-2]
    for before, after in zip(history[:-1], history[1:], strict=True):  # each promotion saw the champion before it
        tags = client.get_model_version(family, after).tags
        assert tags["loopml.promotion.compared_to_version"] == before, (history, after, tags)
