"""The job estimator: watches a running search and enforces its budget (semi-synchronous).

It never evaluates trials itself. While workers run, it
- fails trials whose worker stopped beating its heartbeat (a dead worker),
- times out stragglers: a running trial older than mean + k*std of the completed trials'
  durations (at least `min_trial_timeout_s`) is marked failed and the search goes on,
- raises the stop flag when the trial budget or the time budget is spent,
- ends the search as soon as every worker stopped on its own (no trial fits in the time left).

One job estimator watches a study at a time (`JOB_ESTIMATOR_LEASE_WAIT_S`): when the
scheduler that ran it dies, Airflow starts another try while the first one's process may
still run for seconds before it is told to stop, and two watchers would write the same
trials' MLflow runs twice.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass

from automl_tasks.core.settings import Workspace
from automl_tasks.core.shared_lock import shared_lock
from automl_tasks.core.tags import TIMED_OUT_AFTER_TAG
from automl_tasks.search.budget import NO_TRIAL_FITS, counted, read_lost_trials
from automl_tasks.search.clock import search_deadline
from automl_tasks.search.plan import SearchPlan
from automl_tasks.search.progress import Progress
from automl_tasks.search.storage import (
    MAX_RETRY,
    best_of,
    fail_dead_workers_trials,
    load_study,
    open_storage,
    request_stop,
    stopped_workers,
)
from automl_tasks.search.trial_runs import TrialRuns

log = logging.getLogger(__name__)

#: how long a job estimator waits for an earlier one of the same study to end (Airflow stops
#: an orphaned try within seconds); after it, one whose machine may be unreachable (its
#: PostgreSQL session not yet timed out) is not waited for, and a warning says so
JOB_ESTIMATOR_LEASE_WAIT_S = 120.0


@dataclass(frozen=True)
class SearchOutcome:
    """What the search did; small enough for XCom."""

    study_name: str
    complete: int
    failed: int
    pruned: int
    timed_out: int
    stale: int
    best_value: float | None
    best_trial: int | None
    stop_reason: str
    wall_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def adaptive_timeout(durations: list[float], plan: SearchPlan) -> float | None:
    """mean + k*std of completed trial durations, floored; None until 3 trials completed."""
    if len(durations) < 3:
        return None
    spread = statistics.pstdev(durations)
    return max(plan.min_trial_timeout_s, statistics.fmean(durations) + plan.straggler_k * spread)


def _fail_dead_workers_trials(study) -> int:
    """Fail running trials whose heartbeat stopped (their worker died) and enqueue each once
    more (`storage.fail_dead_workers_trials`); return how many."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    dead = fail_dead_workers_trials(study)
    for trial in dead:
        again = len(RetryHeartbeatStaleTrialCallback.retry_history(trial)) < MAX_RETRY
        log.warning(
            "trial %d failed: its worker stopped beating (dead worker)%s",
            trial.number,
            "; its configuration is enqueued again" if again else "",
        )
    return len(dead)


def _every_worker_stopped(study, plan: SearchPlan, seconds_left: float) -> str:
    """Why the search ends before its deadline when every planned worker stopped on its own
    ("" while one may still start a trial). Waiting out the deadline then only delays the
    stages after the search (2-3 s of a 30 s budget when the last trials could not fit)."""
    stopped = stopped_workers(study)
    if not all(index in stopped for index in range(plan.n_workers)):
        return ""
    why = sorted(set(stopped.values()))
    if why == [NO_TRIAL_FITS]:  # the advisor reads a stop by the time budget from this prefix
        return f"time budget of {plan.time_budget_s:.0f}s spent: {NO_TRIAL_FITS} ({seconds_left:.1f}s left)"
    return f"every worker stopped: {'; '.join(why)}"


def counted_trials(study, states) -> list:
    """Trials of `states` that count against the budget (`budget.counted`), listed fresh."""
    return counted(study.get_trials(deepcopy=False, states=states), read_lost_trials(study), states)


def watch_search(ws: Workspace, study_name: str, *, poll_s: float = 1.0) -> SearchOutcome:
    """Run until the budget is spent and no trial is running; return the outcome.

    The workspace's search settings give the heartbeat grace period after which a silent
    worker's trial is failed; each finished trial gets its MLflow child run (trial_runs).
    It first takes the study's lease: an earlier job estimator of the study still running
    (a try orphaned by a dead scheduler) ends before this one starts."""
    name, file_name = f"loopml.job_estimator:{study_name}", f"job_estimator-{study_name}.lock"
    with shared_lock(ws, name, file_name, wait_s=JOB_ESTIMATOR_LEASE_WAIT_S) as held:
        if not held:
            log.warning(
                "another job estimator of study %s still held its lease after %.0f s (its machine may be "
                "unreachable); watching without it: trials both see may get two MLflow runs",
                study_name,
                JOB_ESTIMATOR_LEASE_WAIT_S,
            )
        return _watch(ws, study_name, poll_s)


def _watch(ws: Workspace, study_name: str, poll_s: float) -> SearchOutcome:
    from optuna.trial import TrialState

    study, plan = load_study(ws.optuna_uri, study_name, settings=ws.search)
    storage = open_storage(ws.optuna_uri, ws.search)
    runs = TrialRuns(ws, plan, study)
    progress = Progress(plan.n_trials, plan.deadline)
    started = time.time()
    timed_out = stale = 0
    reason = ""
    last_line = ""
    while True:
        stale += _fail_dead_workers_trials(study)
        trials = study.get_trials(deepcopy=False)
        now = time.time()
        durations = [
            (t.datetime_complete - t.datetime_start).total_seconds()
            for t in trials
            if t.state == TrialState.COMPLETE and t.datetime_start and t.datetime_complete
        ]
        limit = adaptive_timeout(durations, plan)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        for t in running:
            age = now - t.datetime_start.timestamp() if t.datetime_start else 0.0
            if limit is not None and age > limit:
                try:
                    storage.set_trial_user_attr(t._trial_id, TIMED_OUT_AFTER_TAG, round(age, 1))
                    storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                    timed_out += 1
                    log.warning(
                        "trial %d timed out after %.1fs (limit %.1fs = mean + %.1f*std of %d completed)",
                        t.number,
                        age,
                        limit,
                        plan.straggler_k,
                        len(durations),
                    )
                except Exception as exc:  # it finished meanwhile
                    log.info("trial %d could not be timed out: %s", t.number, exc)
        finished = [t for t in trials if t.state.is_finished()]
        budgeted = counted_trials(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        if not reason and len(budgeted) >= plan.n_trials:
            reason = f"trial budget of {plan.n_trials} spent"
        if not reason:
            deadline = search_deadline(study, plan)
            if now >= deadline:
                reason = f"time budget of {plan.time_budget_s:.0f}s spent"
            elif not running:
                reason = _every_worker_stopped(study, plan, deadline - now)
        if reason:
            request_stop(study, reason)
        best = [t for t in finished if t.state == TrialState.COMPLETE]
        best_value, best_number = best_of(study)
        line = progress.line(len(finished), best_value, best_number, prefix="[job estimator] ")
        if line != last_line:
            log.info("%s | running %d", line, len(running))
            last_line = line
        runs.record(trials)
        still_running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
        if reason and not still_running:
            break
        time.sleep(poll_s)
    final = study.get_trials(deepcopy=False)
    runs.record(final)
    count = lambda s: sum(1 for t in final if t.state == s)  # noqa: E731
    best_value, best_number = best_of(study)
    if not best:
        log.warning("no trial completed: %s", reason)
    return SearchOutcome(
        study_name=study_name,
        complete=count(TrialState.COMPLETE),
        failed=count(TrialState.FAIL),
        pruned=count(TrialState.PRUNED),
        timed_out=timed_out,
        stale=stale,
        best_value=best_value,
        best_trial=best_number,
        stop_reason=reason,
        wall_s=round(time.time() - started, 2),
    )
