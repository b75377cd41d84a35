"""The search's default Optuna storage, Optuna's journal (automl_tasks/search/journal.py):
heartbeats that fail a dead worker's trial, a lock a killed holder cannot keep, snapshots a
new process starts from, one storage per process, and which workspaces get it.
The journal in PostgreSQL is exercised by tests/e2e/test_distributed_postgres.py and the
Celery cluster; the dead-worker retry end to end by test_worker_kill.py."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from automl_tasks.core.profile import DeploymentProfile
from automl_tasks.core.settings import SearchSettings, Workspace
from automl_tasks.core.store_urls import JOURNAL_PREFIX
from automl_tasks.core.tags import HEARTBEAT_ATTR
from automl_tasks.search.journal import HeartbeatJournalStorage, SnapshotFileBackend
from automl_tasks.search.storage import fail_dead_workers_trials, open_storage

GRACE_S = 2


def _journal_url(tmp_path) -> str:
    return f"{JOURNAL_PREFIX}file://{tmp_path / 'optuna' / 'optuna.journal'}"


def test_a_new_workspace_keeps_the_journal_and_an_old_one_its_sqlite_studies(tmp_path):
    fresh = Workspace.at(tmp_path / "fresh")
    assert fresh.optuna_uri == _journal_url(tmp_path / "fresh")
    assert isinstance(open_storage(fresh.optuna_uri), HeartbeatJournalStorage)
    old = tmp_path / "old"
    legacy = old / "optuna" / "optuna.db"
    optuna.create_study(study_name="kept", storage=open_storage(f"sqlite:///{legacy}"))
    ws = Workspace.at(old)
    assert ws.optuna_uri == f"sqlite:///{legacy}"
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(ws.optuna_uri))] == ["kept"]


def test_the_distributed_profile_takes_the_journal_in_postgresql_not_in_a_file(tmp_path):
    env = {
        "LOOPML_HOME": str(tmp_path / "ws"),
        "LOOPML_EXECUTOR": "celery",
        "LOOPML_AIRFLOW_DB_URI": "postgresql://db/airflow",
        "LOOPML_INFERENCE_LOG_URI": "postgresql://db/inference",
        "LOOPML_MLFLOW_URI": "http://mlflow:5000",
        "LOOPML_DVC_REMOTE": "http://mlflow:5000/datasets",
        "LOOPML_BROKER_URL": "redis://redis:6379/0",
    }
    on_postgres = {**env, "LOOPML_OPTUNA_URI": f"{JOURNAL_PREFIX}postgresql://db/optuna"}
    assert DeploymentProfile.from_env(on_postgres).problems() == []
    in_a_file = DeploymentProfile.from_env(env).problems()  # the workspace's journal file: one machine's
    assert len(in_a_file) == 1 and in_a_file[0].startswith("LOOPML_OPTUNA_URI: the celery executor needs PostgreSQL")
    with pytest.raises(ValueError, match="a journal lives in a file"):
        open_storage(f"{JOURNAL_PREFIX}mysql://db/optuna")


def test_a_silent_running_trial_is_failed_and_retried_once_a_beating_or_unstarted_one_is_not(tmp_path):
    settings = SearchSettings(heartbeat_interval_s=1, heartbeat_grace_s=GRACE_S)
    storage = open_storage(_journal_url(tmp_path), settings)
    study = optuna.create_study(study_name="beats", storage=storage)
    silent, beating, never_beat = (study.ask() for _ in range(3))
    for trial in (silent, beating, never_beat):
        trial.suggest_float("x", 0, 1)
    storage.record_heartbeat(silent._trial_id)
    storage.record_heartbeat(beating._trial_id)
    assert storage._get_stale_trial_ids(study._study_id) == []
    time.sleep(GRACE_S + 0.2)  # the grace period is what is under test
    storage.record_heartbeat(beating._trial_id)
    assert storage._get_stale_trial_ids(study._study_id) == [silent._trial_id]

    assert [t.number for t in fail_dead_workers_trials(study)] == [silent.number]  # what the job estimator calls
    states = {t.number: t.state for t in study.get_trials()}
    assert states[silent.number] == TrialState.FAIL
    assert states[beating.number] == states[never_beat.number] == TrialState.RUNNING
    (retry,) = [t for t in study.get_trials() if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None]
    assert retry.state == TrialState.WAITING and retry.params == silent.params
    beat = study._storage.get_trial(beating._trial_id).system_attrs[HEARTBEAT_ATTR]
    assert time.time() - beat < GRACE_S


HOLD_LOCK = """
import sys, time
from automl_tasks.search.journal import SnapshotFileBackend
SnapshotFileBackend(sys.argv[1])._lock.acquire()  # the lock the backend's appends take
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_lock_holder_does_not_stall_the_next_append(tmp_path):
    path = str(tmp_path / "optuna.journal")
    backend = SnapshotFileBackend(path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    started = time.monotonic()
    backend.append_logs([{"op_code": 0, "worker_id": "w"}])
    # Optuna's default symlink lock would wait out its 30 s grace period here
    assert time.monotonic() - started < 5
    assert list(backend.read_logs(0)) == [{"op_code": 0, "worker_id": "w"}]


def fill(study, n: int) -> None:
    """`n` finished trials, each with a parameter, a user attribute and a value."""
    for i in range(n):
        trial = study.ask()
        trial.suggest_int("i", 0, 1000)
        trial.set_user_attr("note", f"trial {i}")
        study.tell(trial, float(i))


def assert_reopens_from_the_snapshot(study, backend) -> None:
    """A new storage on `backend` starts from its snapshot, not from record 0, and sees the
    same trials as `study`."""
    first_read: list[int] = []
    read_logs = backend.read_logs
    backend.read_logs = lambda start: first_read.append(start) or read_logs(start)
    fresh = HeartbeatJournalStorage(backend, heartbeat_interval=1, grace_period=2)
    assert first_read[0] > 0, "the new storage replayed the journal from its first record"
    reopened = optuna.load_study(study_name=study.study_name, storage=fresh)
    assert [(t.number, t.params, t.user_attrs, t.value) for t in reopened.get_trials()] == [
        (t.number, t.params, t.user_attrs, t.value) for t in study.get_trials()
    ]


def test_a_new_process_starts_from_the_snapshot_and_sees_every_trial(tmp_path):
    study = optuna.create_study(study_name="many", storage=open_storage(_journal_url(tmp_path)))
    fill(study, 130)  # Optuna snapshots every 100 trials
    assert (tmp_path / "optuna" / "optuna.journal.snapshot").exists()
    assert_reopens_from_the_snapshot(study, SnapshotFileBackend(str(tmp_path / "optuna" / "optuna.journal")))


def _child_storage_identity(url: str, queue) -> None:
    storage = open_storage(url)
    queue.put(storage._worker_id_prefix)


def test_a_forked_process_opens_its_own_storage(tmp_path):
    url = _journal_url(tmp_path)
    parent = open_storage(url)
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_child_storage_identity, args=(url, queue))
    child.start()
    child_prefix = queue.get(timeout=60)
    child.join(timeout=30)
    assert child.exitcode == 0
    # the same worker id in two processes would let each take the other's reserved trial for its own
    assert child_prefix != parent._worker_id_prefix
    assert open_storage(url) is parent


def test_a_beat_for_a_trial_that_ended_meanwhile_is_dropped_quietly(tmp_path):
    """The job estimator may time a trial out while its worker's heartbeat thread still beats."""
    storage = open_storage(_journal_url(tmp_path))
    study = optuna.create_study(study_name="ended", storage=storage)
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    storage.record_heartbeat(trial._trial_id)
    assert HEARTBEAT_ATTR not in storage.get_trial(trial._trial_id).system_attrs
