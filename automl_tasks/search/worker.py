"""A search worker: reserves trials from the shared study, evaluates them, reports back.

Workers are stateless: everything comes from the plan on the study. Each trial beats a
heartbeat while it runs, so if the worker process dies the job estimator can fail the
trial (`storage.fail_dead_workers_trials`) and the search goes on.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any

from automl_tasks.core.errors import InvalidValueError, TrialEnded, TrialFailed, TrialPruned
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import OVER_BUDGET_ATTR
from automl_tasks.estimators import estimator_class
from automl_tasks.estimators.metrics import Metric
from automl_tasks.search.budget import NO_TRIAL_FITS, BudgetView, branch_params
from automl_tasks.search.clock import start_clock
from automl_tasks.search.deployment import (
    TrialDeployment,
    best_so_far,
    measure_trial,
    objective_values,
    record_on_trial,
)
from automl_tasks.search.plan import SearchPlan
from automl_tasks.search.predictions import save_fold_predictions
from automl_tasks.search.progress import Progress
from automl_tasks.search.storage import open_storage, open_study, record_worker_stop
from automl_tasks.search.strategies import make_strategy
from automl_tasks.search.trial_runs import mark_worker
from automl_tasks.search_space import load_search_space

log = logging.getLogger(__name__)
#: how often a worker whose budget is full of other workers' running trials looks again
BUDGET_POLL_S = 0.5
#: the shortest time between two progress lines of a worker (each reads the whole study)
PROGRESS_EVERY_S = 1.0
#: draws in a row given back for not finishing in time before a worker stops (the sampler may
#: keep proposing a slow family while a quicker one would still fit)
MAX_LATE_DRAWS = 3


@dataclass(frozen=True)
class WorkerSummary:
    worker: int
    evaluated: int
    failed: int
    discarded: int  # finished after the job estimator had timed the trial out
    stopped_early: int = 0  # stopped by the strategy's pruner or the fold race (search/fold_race)


class Heartbeat:
    """Records a trial heartbeat every `interval` seconds in a daemon thread."""

    def __init__(self, storage, trial_id: int, interval: float) -> None:
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial_id}")

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception as exc:  # never kill the trial for a missed beat
                log.warning("heartbeat for trial id %s failed: %s", self._trial_id, exc)

    def __enter__(self) -> Heartbeat:
        # the first beat before the trial trains, not when the thread gets the CPU: a trial with
        # no beat at all is invisible to Optuna's stale-trial check (a worker killed before the
        # thread's first beat left its trial RUNNING until the straggler time-out)
        self._storage.record_heartbeat(self._trial_id)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class AlgorithmUnavailable(RuntimeError):
    """The plan's estimator cannot be imported here: every trial of this worker would fail alike."""


def evaluate_config(plan: SearchPlan, config: dict, reporter=None) -> tuple[float, float]:
    """Train and score one configuration on the search splits; (score, seconds).

    `reporter(value, step) -> stop?` receives intermediate scores of estimators with a fidelity."""
    _, score, seconds = train_config(plan, config, reporter)
    return score, seconds


def train_config(plan: SearchPlan, config: dict, reporter=None) -> tuple[Any, float, float]:
    """(the fitted estimator, its score, seconds): `evaluate_config` keeping the model, which
    the deployment goal exports and measures on the target."""
    try:
        cls = estimator_class(plan.algorithm)
    except InvalidValueError as exc:  # e.g. this machine's environment (image) lacks the algorithm's dependency
        raise AlgorithmUnavailable(f"this worker cannot load the algorithm: {exc}") from exc
    estimator = cls(
        run_epochs=plan.run_epochs, data=plan.data, is_trainer=False, model_args=config, metric=Metric(plan.metric)
    )
    estimator.reporter = reporter
    result = estimator.run()
    return estimator, result.score, result.duration_s


def _on_target(ws: Workspace, plan: SearchPlan, task: Any, estimator: Any) -> TrialDeployment:
    """Measure the trial's model on the plan's target; record the latency, verdict and
    Optuna constraints on the trial."""
    workdir = ws.runs / plan.study_name / f"trial-{task.number}"
    try:
        deployment = measure_trial(ws, plan, estimator, workdir)
    except Exception as exc:  # a broken engine set-up makes the trial infeasible, never kills the worker
        reason = f"measuring on {plan.deploy_target} failed: {type(exc).__name__}: {exc}"
        log.warning("trial %d: %s", task.number, reason, exc_info=True)
        deployment = TrialDeployment(plan.deploy_target, "", None, reason, False, reason)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the ONNX file is cached by hash; the copy is not needed
    record_on_trial(task.trial, plan, deployment)
    log.info(
        "trial %d on %s: %s%s%s",
        task.number,
        plan.deploy_target,
        "" if deployment.latency_ms is None else f"{deployment.latency_ms:.4g} ms, ",
        deployment.verdict,
        f"; infeasible: {deployment.reason}" if deployment.reason else "",
    )
    return deployment


def _keep_predictions(ws: Workspace, plan: SearchPlan, number: int, estimator: Any) -> None:
    """Save a completed trial's fold predictions for ensemble selection (search/predictions);
    estimators that cannot give them (anything but the tabular one), and plans that build
    no ensemble (see pipelines/ensembling), save nothing."""
    if getattr(estimator, "fold_models_", None) is None or not plan.ensemble or plan.deploy_target:
        return
    try:
        folds = estimator.fold_predictions()
        classes = getattr(estimator.pipeline_, "classes_", None)
        bests = getattr(estimator, "fold_best_iterations_", None)
        save_fold_predictions(ws, plan.study_name, number, folds, classes, bests, parent_run_id=plan.parent_run_id)
    except Exception as exc:  # an ensemble candidate less, never a failed trial
        log.warning("trial %d: could not save its predictions for ensemble selection: %s", number, exc)


def run_worker(ws: Workspace, study_name: str, worker_index: int) -> WorkerSummary:
    """Evaluate trials until the budget is spent or the job estimator says stop."""
    study, plan = open_study(ws, study_name, seed=worker_index + 1)
    storage = open_storage(ws.optuna_uri, ws.search)
    space = load_search_space(plan.space_yaml)
    strategy = make_strategy(plan.strategy, seed=worker_index + 1, space=space)
    started = start_clock(study)  # the time budget counts from the first worker's start
    budget = BudgetView(study, plan, started, family_params=branch_params(space))
    progress = Progress(plan.n_trials, budget.deadline)
    tag = f"[worker {worker_index}] "
    evaluated = failed = discarded = stopped_early = late = 0
    last_line = -float("inf")
    stopped = unavailable = ""  # why this worker stopped (recorded in the study for the job estimator)
    while True:
        reason = budget.stop_reason()
        if reason:
            stopped = reason
            break
        room = budget.state()
        if room == "wait":
            time.sleep(BUDGET_POLL_S)
            continue
        if room == "spent":
            stopped = "trial or time budget spent"
            break
        task = strategy.generate_tasks(study, 1)[0]
        trial, config = task.trial, task.config
        if budget.over_budget(trial.number):
            _give_back(study, strategy, task, "reserved after the budget filled")
            stopped = f"trial {trial.number} was reserved after the budget filled; given back"
            break
        in_time, expected = budget.finishes_in_time(config)
        if not in_time:
            _give_back(study, strategy, task, "would not finish within the time budget")
            late += 1
            log.info(
                "%strial %d given back: trials like it take %.1fs and %.1fs of the time budget are left",
                tag,
                trial.number,
                expected,
                budget.deadline - time.time(),
            )
            if late >= MAX_LATE_DRAWS or not budget.any_trial_fits():
                stopped = NO_TRIAL_FITS
                break
            continue
        late = 0
        score, ended, values, deployment = None, None, None, None
        unavailable = ""
        with Heartbeat(storage, trial._trial_id, storage.get_heartbeat_interval() or ws.search.heartbeat_interval_s):
            mark_worker(trial, worker_index)  # its MLflow child run is written from the study (search/trial_runs)
            try:
                estimator, score, _ = train_config(plan, config, lambda v, s, t=task: strategy.report(t, v, s))
                if plan.deploy_target:
                    deployment = _on_target(ws, plan, task, estimator)
                # a trade-off search cannot place a model without a latency on its front: that
                # trial fails with the reason (objective_values raises)
                values = objective_values(plan, score, deployment)
                _keep_predictions(ws, plan, trial.number, estimator)
            except TrialPruned as exc:
                ended = exc
                log.info("%strial %d stopped early: %s", tag, trial.number, exc)
            except AlgorithmUnavailable as exc:  # fail this trial with why, leave the study to the others
                ended, unavailable = TrialFailed(str(exc)), str(exc)
                log.error("%strial %d failed: %s", tag, trial.number, exc)
            except Exception as exc:  # a bad configuration fails its trial, not the worker
                ended = TrialFailed(f"{type(exc).__name__}: {exc}")
                log.warning("%strial %d failed: %s", tag, trial.number, ended)
        try:
            strategy.handle_rewards(study, task, values, ended)
            outcome = "COMPLETE" if values is not None else _outcome_of(ended)
            evaluated += values is not None
            stopped_early += outcome == "PRUNED"
            failed += outcome == "FAIL"
        except Exception as exc:  # the job estimator timed the trial out meanwhile
            outcome, discarded = "TIMED_OUT", discarded + 1
            log.warning("%strial %d finished after being timed out; result discarded (%s)", tag, trial.number, exc)
        last = f"trial {trial.number} {outcome} {'' if score is None else f'{plan.metric}={score:.5g}'}"
        if time.monotonic() - last_line >= PROGRESS_EVERY_S:  # fast trials: a line a second, not a trial
            log.info("%s%s | last: %s", tag, progress.line(budget.finished(), *best_so_far(study)), last)
            last_line = time.monotonic()
        else:
            log.debug("%s%s", tag, last)
        if unavailable:
            log.error("%sstopping: %s; the study goes on with the workers that can load it", tag, unavailable)
            stopped = unavailable
            break
    if not unavailable:
        log.info("%sstopping: %s", tag, stopped)
    record_worker_stop(study, worker_index, stopped)
    return WorkerSummary(worker_index, evaluated, failed, discarded, stopped_early)


def _give_back(study: Any, strategy: Any, task: Any, why: str) -> None:
    """End a reserved trial unevaluated (PRUNED, `loopml.over_budget`: it counts against no budget)."""
    task.trial.set_user_attr(OVER_BUDGET_ATTR, True)
    strategy.handle_rewards(study, task, None, TrialPruned(f"{why}; given back"))


def _outcome_of(ended: TrialEnded | None) -> str:
    return "PRUNED" if isinstance(ended, TrialPruned) else "FAIL"
