"""Each enqueued trial is reserved by exactly one worker process, on the journal file storage
(the default) and on the SQLite storage.

Regression test for SQLite: Optuna reserves a waiting trial by reading WAITING then writing
RUNNING, and Python's sqlite3 driver began the transaction only at the write, so two worker
processes could both reserve (and evaluate) the same trial (storage.open_storage). The
journal decides a race by the order of its records: the first RUNNING record wins."""

from __future__ import annotations

import multiprocessing
import time

import pytest


def _pop_all(url: str, start_at: float, queue) -> None:
    import optuna

    from automl_tasks.search.storage import open_storage

    study = optuna.load_study(study_name="race", storage=open_storage(url))
    while time.time() < start_at:  # start together, so the reservations overlap
        time.sleep(0.001)
    popped = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:
        popped.append(trial_id)
    queue.put(popped)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_four_processes_reserve_each_waiting_trial_once(tmp_path, kind):
    import optuna

    from automl_tasks.search.storage import open_storage

    url = (
        f"journal+file://{tmp_path / 'optuna.journal'}" if kind == "journal" else f"sqlite:///{tmp_path / 'optuna.db'}"
    )
    study = optuna.create_study(study_name="race", storage=open_storage(url))
    for i in range(60):
        study.enqueue_trial({"x": i}, skip_if_exists=False)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start_at = time.time() + 5
    processes = [context.Process(target=_pop_all, args=(url, start_at, queue)) for _ in range(4)]
    for process in processes:
        process.start()
    popped = [trial_id for _ in processes for trial_id in queue.get(timeout=120)]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert sorted(popped) == sorted(set(popped)) and len(popped) == 60
