"""The Optuna storage as middleware: studies, heartbeats and the stop flag."""

from __future__ import annotations

import functools
import logging
import os
import warnings
from typing import Any

from automl_tasks.core.settings import SearchSettings, Workspace
from automl_tasks.core.store_urls import JOURNAL_PREFIX
from automl_tasks.core.tags import (
    DEAD_TRIALS_ATTR,
    FAMILY_TAG,
    OVER_BUDGET_ATTR,
    PLAN_ATTR,
    SPACE_HASH_TAG,
    STOP_ATTR,
    STRATEGY_TAG,
    WORKER_STOPPED_ATTR,
)
from automl_tasks.search.budget import read_lost_trials
from automl_tasks.search.plan import SearchPlan

#: heartbeat interval and grace period unless the caller passes the workspace's settings
DEFAULT_SETTINGS = SearchSettings()
#: a trial lost to a dead worker is run again this many times (Optuna's retry callback)
MAX_RETRY = 1


def fail_dead_workers_trials(study: Any) -> list:
    """Fail the running trials whose heartbeat stopped (their worker died), record each as lost
    to a dead worker (it does not count against the budget) and enqueue its configuration
    again once (`RetryHeartbeatStaleTrialCallback`, at most MAX_RETRY times); return the
    trials failed, as they were while running.

    Optuna's `fail_stale_trials` fails such a trial first and runs its stale-trial callback
    after. In between, a live worker saw the budget full of finished trials, nothing running
    and nothing to retry, and left: the retry enqueued a moment later was stranded and the
    search waited out its time budget (seen in CI). Here the retry is enqueued and the trial
    recorded as lost while it still reads RUNNING, when a worker that finds the budget full
    waits for it (`BudgetView.state`); then it is failed. Called by the job estimator, one
    per study at a time (its lease), so a dead trial is not enqueued twice."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    failed = []
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        trial = storage.get_trial(trial_id)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)
        study.set_user_attr(DEAD_TRIALS_ATTR, sorted(read_lost_trials(study) | {trial.number}))
        try:
            storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
            failed.append(trial)
        except UpdateFinishedTrialError:  # it finished meanwhile: its worker was slow, not dead
            _withdraw_retry(study, trial.number)
    return failed


def _withdraw_retry(study: Any, number: int) -> None:
    """Undo `fail_dead_workers_trials` for trial `number`, which finished after all: it counts
    against the budget again and its retry, if no worker took it yet, is given back."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    study.set_user_attr(DEAD_TRIALS_ATTR, sorted(read_lost_trials(study) - {number}))
    for retry in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == number:
            study._storage.set_trial_user_attr(retry._trial_id, OVER_BUDGET_ATTR, True)
            study._storage.set_trial_state_values(retry._trial_id, state=TrialState.PRUNED)


def open_storage(url: str, settings: SearchSettings | None = None):  # -> optuna.storages.BaseStorage
    """The Optuna storage at `url` with heartbeats (`settings`' interval and grace period), so
    a dead worker's trial can be failed; one per URL and settings in a process.

    `journal+file:///path` and `journal+postgresql://...` are Optuna's journal storage
    (search/journal.py: the default, about a tenth of the RDB storage's CPU a trial);
    `sqlite:///...` and `postgresql://...` are its RDB storage (workspaces made before the
    journal, or by choice)."""
    return _open_storage(url, settings or DEFAULT_SETTINGS)


@functools.cache
def _open_storage(url: str, settings: SearchSettings):  # -> optuna.storages.BaseStorage
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna detects stale trials (loopml fails and retries them: `fail_dead_workers_trials`),
    # but it beats heartbeats only inside Study.optimize; loopml drives the study with ask/tell
    # (the job estimator times out stragglers, forbidden draws are redrawn), so it beats
    # them itself (see worker.Heartbeat). These warnings assume Study.optimize and would
    # repeat on every trial.
    warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url.startswith(JOURNAL_PREFIX):
        from automl_tasks.search.journal import open_journal

        return open_journal(
            url,
            heartbeat_interval=settings.heartbeat_interval_s,
            grace_period=settings.heartbeat_grace_s,
        )
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=settings.heartbeat_interval_s,
        grace_period=settings.heartbeat_grace_s,
    )
    if url.startswith("sqlite"):
        _serialise_sqlite_transactions(storage.engine)
    return storage


# A forked child must not share its parent's storage: a journal storage names its records by
# a per-process id and thread (two processes with one id would each take the other's trial
# for its own), and an RDB storage's pooled connections must not cross a fork either.
os.register_at_fork(after_in_child=_open_storage.cache_clear)


def _serialise_sqlite_transactions(engine: Any) -> None:
    """Make every transaction on the SQLite storage `BEGIN IMMEDIATE`.

    Optuna reserves a waiting trial by reading its state and then writing RUNNING (its
    `SELECT ... FOR UPDATE` is a no-op on SQLite), and Python's sqlite3 driver starts the
    transaction only at the write: two workers could both read WAITING and both run the
    same trial (measured: 4 processes popping 60 enqueued trials popped 70-73). Taking
    the write lock at BEGIN (SQLAlchemy's documented pysqlite recipe) makes the
    read-then-write atomic; the busy timeout queues the others. PostgreSQL's row lock
    already does this.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event emits BEGIN instead

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened by the storage's set-up predate the listeners


def create_study(url: str, plan: SearchPlan, settings: SearchSettings | None = None):  # -> optuna.Study
    """Create (or reopen) the plan's study with its strategy's sampler and pruner."""
    import optuna

    from automl_tasks.search.deployment import directions
    from automl_tasks.search.fold_race import study_pruner
    from automl_tasks.search.strategies import make_strategy

    strategy = make_strategy(plan.strategy, seed=plan.seed)
    study = optuna.create_study(
        storage=open_storage(url, settings),
        study_name=plan.study_name,
        directions=directions(plan),  # (score, latency on the target) when trading latency off
        sampler=strategy.sampler(),
        pruner=study_pruner(strategy, plan),
        load_if_exists=True,
    )
    study.set_user_attr(PLAN_ATTR, plan.to_json())
    study.set_user_attr(FAMILY_TAG, plan.family)
    study.set_user_attr(SPACE_HASH_TAG, plan.space_hash)
    study.set_user_attr(STRATEGY_TAG, plan.strategy)
    return study


def load_study(
    url: str, study_name: str, *, seed: int = 0, settings: SearchSettings | None = None
):  # -> tuple[optuna.Study, SearchPlan]
    """The study and its plan; the sampler and pruner are the plan's strategy's (seeded with
    `seed`), or the fold race's pruner when the plan races folds."""
    import optuna

    from automl_tasks.search.fold_race import study_pruner
    from automl_tasks.search.strategies import make_strategy

    study = optuna.load_study(study_name=study_name, storage=open_storage(url, settings))
    plan = SearchPlan.from_json(study.user_attrs[PLAN_ATTR])
    strategy = make_strategy(plan.strategy, seed=seed)
    study.sampler, study.pruner = strategy.sampler(), study_pruner(strategy, plan)
    return study, plan


def open_study(ws: Workspace, study_name: str, *, seed: int = 0):  # -> tuple[optuna.Study, SearchPlan]
    """`load_study` on the workspace's storage, with the plan's files found on this host
    (`SearchPlan.on_host`): what every task and worker uses, on whichever machine it runs."""
    study, plan = load_study(ws.optuna_uri, study_name, seed=seed, settings=ws.search)
    return study, plan.on_host(ws)


def request_stop(study: Any, reason: str) -> None:
    if study.user_attrs.get(STOP_ATTR) is None:
        logging.getLogger(__name__).info("stop requested: %s", reason)
        study.set_user_attr(STOP_ATTR, reason)


def record_worker_stop(study: Any, worker_index: int, reason: str) -> None:
    """Say in the study that worker `worker_index` stopped and why (one attribute per worker,
    so two workers stopping at once never overwrite each other)."""
    study.set_user_attr(f"{WORKER_STOPPED_ATTR}.{worker_index}", reason)


def stopped_workers(study: Any) -> dict[int, str]:
    """Worker index -> why it stopped, for the workers that stopped on their own (read fresh)."""
    attrs = study._storage.get_study_user_attrs(study._study_id)
    prefix = f"{WORKER_STOPPED_ATTR}."
    return {int(key[len(prefix) :]): str(why) for key, why in attrs.items() if key.startswith(prefix)}


def best_of(study: Any) -> tuple[float | None, int | None]:
    """(best score, its trial number), or (None, None) before any trial completed (or none
    is feasible). Infeasible trials (over the latency budget) never count; a study that
    trades latency off reports the best score on its feasible Pareto front."""
    from automl_tasks.search.deployment import best_so_far

    return best_so_far(study)
