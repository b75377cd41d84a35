"""A real worker process killed with SIGKILL mid-trial: its trial is failed after the
heartbeat grace period, retried, and the search still completes its budget."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import replace

import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from automl_tasks.core.settings import SearchSettings
from automl_tasks.core.store_urls import JOURNAL_PREFIX
from automl_tasks.core.tags import HEARTBEAT_ATTR
from automl_tasks.search import load_study, run_worker, start_search, watch_search
from tests.sleepy_estimator import SPACE
from tests.unit.test_search_engine import make_plan, sleepy_plan
from tests.worker_processes import start_worker, wait_until


def _running_trial(study, optuna_uri: str):
    """The worker's running trial once it trains: sampled, and its first heartbeat recorded."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running or not study._storage.get_trial(running[0]._trial_id).params:
        return None
    return running[0] if _has_beaten(study, optuna_uri, running[0]._trial_id) else None


def _has_beaten(study, optuna_uri: str, trial_id: int) -> bool:
    """Whether the trial's heartbeat was recorded: a system attribute of the journal storage's
    trial, a row of the RDB storage's heartbeat table."""
    if optuna_uri.startswith(JOURNAL_PREFIX):
        return HEARTBEAT_ATTR in study._storage.get_trial(trial_id).system_attrs
    import sqlalchemy

    engine = sqlalchemy.create_engine(optuna_uri)
    try:
        with engine.connect() as conn:
            query = sqlalchemy.text("SELECT COUNT(*) FROM trial_heartbeats WHERE trial_id = :t")
            return conn.execute(query, {"t": trial_id}).scalar_one() > 0
    finally:
        engine.dispose()


def _complete(study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


@pytest.mark.parametrize("storage", ["journal", "rdb"])
def test_sigkilled_worker_trial_is_failed_retried_and_budget_reached(workspace, breast_cancer_frame, storage):
    # beats every second, failed after 3 s of silence: here, and in the worker process (ws.env());
    # on the journal storage (the default) and on the RDB storage (workspaces made before it)
    ws = replace(workspace, search=SearchSettings(heartbeat_interval_s=1, heartbeat_grace_s=3))
    if storage == "rdb":
        ws = replace(ws, optuna_uri=f"sqlite:///{ws.home / 'optuna' / 'optuna.db'}")
    assert ws.optuna_uri.startswith(JOURNAL_PREFIX) == (storage == "journal")
    plan, space = sleepy_plan(ws, breast_cancer_frame, space=SPACE, n_trials=4, name="kill", time_budget_s=300)
    start_search(ws.optuna_uri, plan, space)
    study, _ = load_study(ws.optuna_uri, plan.study_name, settings=ws.search)
    victim = start_worker(ws, plan.study_name, 0, start_new_session=True)
    doomed = wait_until(
        lambda: _running_trial(study, ws.optuna_uri), 120, "the worker process to start a trial", poll_s=0.2
    )
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL

    outcome: dict = {}

    def watch() -> None:
        try:
            # the job estimator looks only once the live worker has filled the budget beside the
            # dead worker's RUNNING trial: the live worker must wait for that trial's retry then,
            # not leave it stranded (the search would then wait out its whole time budget)
            wait_until(lambda: len(_complete(study)) >= plan.n_trials - 1, 120, "the live worker's trials", poll_s=0.2)
            outcome["watch"] = watch_search(ws, plan.study_name, poll_s=0.5)
        except BaseException as exc:  # the helper thread's failure fails the test, with its cause
            outcome["error"] = exc

    watcher = threading.Thread(target=watch)
    watcher.start()
    summary = run_worker(ws, plan.study_name, 1)
    watcher.join(timeout=300)

    assert "error" not in outcome, f"the job estimator failed: {outcome['error']!r}"
    assert not watcher.is_alive(), "the job estimator did not finish within 300 s of the worker"
    assert outcome["watch"].stale == 1
    killed = study._storage.get_trial(doomed._trial_id)
    assert killed.state == TrialState.FAIL
    retries = [
        t for t in study.get_trials() if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number
    ]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == plan.n_trials, "the budget counts completed trials, not the one lost to the kill"
    assert summary.evaluated == plan.n_trials


def test_asha_stops_poor_digits_trials_early_through_the_worker(workspace):
    from automl_tasks.algorithms import builtin_specs
    from automl_tasks.data import bundled_frame

    spec = builtin_specs()["digits_cnn"]
    plan, space = make_plan(
        workspace,
        bundled_frame("digits"),
        n_trials=10,
        name="asha",
        space=spec.space_yaml,
        space_yaml=spec.space_yaml,
        algorithm=spec.estimator,
        strategy="asha",
        run_epochs=9,
        time_budget_s=600,
    )
    start_search(workspace.optuna_uri, plan, space)
    summary = run_worker(workspace, plan.study_name, 0)
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    # forbidden draws are pruned before they start; the strategy's stops have intermediate values
    pruned = [t for t in study.get_trials(states=(TrialState.PRUNED,)) if t.intermediate_values]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert pruned and complete, [t.state.name for t in study.trials]
    assert all(max(t.intermediate_values) < 9 for t in pruned), "a pruned trial ran every epoch"
    assert all(sorted(t.intermediate_values) == list(range(1, 10)) for t in complete)
    assert summary.evaluated == len(complete)
