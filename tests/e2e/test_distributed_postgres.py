"""Distributed mode on a real PostgreSQL (started on loopback by the test harness):
4 concurrent worker processes evaluate every trial exactly once, and 6 promotion processes
of 6 separate workspaces ("machines") racing on one family stay serialised by the
PostgreSQL advisory lock. The pipelines themselves run on PostgreSQL through Celery workers
in test_distributed_celery.py."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from automl_tasks.core.settings import Workspace
from automl_tasks.core.store_urls import JOURNAL_PREFIX
from automl_tasks.data import bundled_frame
from automl_tasks.search import load_study, start_search
from tests.postgres_server import postgres_server
from tests.unit.test_search_engine import sleepy_plan
from tests.worker_processes import start_python, start_worker, worker_summary

pytestmark = [pytest.mark.slow]

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
from automl_tasks.core.store_urls import JOURNAL_PREFIX
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


@pytest.mark.parametrize("layout", ["journal", "rdb"])
def test_four_worker_processes_evaluate_every_trial_once(postgres, tmp_path, layout):
    """On Optuna's journal in a PostgreSQL table (the distributed default) and on its RDB
    storage: four processes that reserve, sample and tell at once number, run and record
    each trial once (the journal's records stay gap-free and in one order)."""
    ws = _on_postgres(
        Workspace.at(tmp_path / "ws").ensure(),
        postgres.create_database(f"optuna_procs_{layout}"),
        postgres.create_database(f"mlflow_procs_{layout}"),
    )
    if layout == "journal":
        ws = dataclasses.replace(ws, optuna_uri=JOURNAL_PREFIX + ws.optuna_uri)
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


def test_the_inference_log_in_postgresql_keeps_the_same_contract(postgres):
    """The distributed mode's inference log: the SQLite log's behaviour, and one family's
    records never show in another's (one table holds them all)."""
    from automl_tasks.monitoring.inference_log import PostgresInferenceLog
    from tests.drift_helpers import check_inference_log

    url = _psycopg2(postgres.create_database("inference"))
    check_inference_log(PostgresInferenceLog(url, "fam_a"))
    other = PostgresInferenceLog(url, "fam_b")  # a second process creating the schema again is harmless
    assert other.count() == 0 and other.read().empty
    ws = dataclasses.replace(Workspace.at(Path("/nonexistent")), inference_log_uri=url)
    from automl_tasks.monitoring.inference_log import has_inference_log, open_inference_log, read_logged_window

    assert has_inference_log(ws, "fam_a") and not has_inference_log(ws, "fam_b")
    assert open_inference_log(ws, "fam_a").read()["x"].tolist() == [0, 1, 2, 9]
    # the drift check's window: one open of the log, the same rows, none for another family
    assert read_logged_window(ws, "fam_a", since=0)["x"].tolist() == [0, 1, 2, 9]
    assert read_logged_window(ws, "fam_b", since=0).empty


def test_the_journal_in_postgresql_snapshots_and_a_new_process_sees_every_trial(postgres):
    """Optuna saves a snapshot every 100 trials; a storage opened afterwards starts from it
    (not from the first record) and sees the same trials as the one that wrote them."""
    import optuna

    from automl_tasks.search.journal import PostgresJournalBackend
    from automl_tasks.search.storage import open_storage
    from tests.unit.test_journal_storage import assert_reopens_from_the_snapshot, fill

    url = _psycopg2(postgres.create_database("optuna_snapshot"))
    study = optuna.create_study(study_name="many", storage=open_storage(JOURNAL_PREFIX + url))
    fill(study, 105)
    backend = PostgresJournalBackend(url)
    assert backend.load_snapshot() is not None
    assert_reopens_from_the_snapshot(study, backend)


def test_the_journal_survives_a_connection_that_died_while_idle(postgres):
    """A long trial leaves the worker's connection idle; if the server or the network drops it
    meanwhile, the tell (an append, never re-sent blindly) must still be recorded."""
    import sqlalchemy

    from automl_tasks.search.journal import PostgresJournalBackend

    url = _psycopg2(postgres.create_database("optuna_idle"))
    backend = PostgresJournalBackend(url)
    backend.append_logs([{"op_code": 0, "worker_id": "w", "n": 0}])
    pid = backend._connection.get_backend_pid()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:  # the server ends the idle connection
        assert conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    engine.dispose()
    backend._last_used -= 3600  # an hour-long trial, without waiting an hour
    backend.append_logs([{"op_code": 0, "worker_id": "w", "n": 1}])
    assert [log["n"] for log in backend.read_logs(0)] == [0, 1]
    assert backend._connection.get_backend_pid() != pid


def test_a_bounded_wait_for_an_advisory_lock_gives_up_then_takes_it_once_released(postgres):
    """The job estimator's lease in the distributed mode: another session's lock is waited
    for up to the bound (False: not held), and taken as soon as that session lets go."""
    from automl_tasks.core.shared_lock import postgres_advisory_lock

    url = _psycopg2(postgres.create_database("leases"))
    with postgres_advisory_lock(url, "loopml.job_estimator:s") as first:
        assert first
        with postgres_advisory_lock(url, "loopml.job_estimator:s", wait_s=0.5) as second:
            assert not second
        with postgres_advisory_lock(url, "loopml.job_estimator:other", wait_s=0.5) as other:
            assert other
    with postgres_advisory_lock(url, "loopml.job_estimator:s", wait_s=0.5) as after:
        assert after
