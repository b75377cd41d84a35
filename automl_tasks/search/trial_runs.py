"""Each finished trial as an MLflow child run of the pipeline run, written from the study.

The Optuna study is the search's record and MLflow shows it. The job estimator lists the
study on every poll anyway; it writes a child run for each trial that finished since, and
workers write nothing to MLflow. Workers used to log their own trials. That cost a worker
7-15 ms of CPU and 30-45 ms of wall time per trial against MLflow's server
(benchmarks/worker_bookkeeping.py). A worker killed between telling Optuna and logging also
lost the record. From the study, no finished trial goes unrecorded, the dead worker's included,
and none is recorded twice: a restarted job estimator first looks up the runs already there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    DEPLOY_ENGINE_TAG,
    DEPLOY_VERDICT_ATTR,
    ERROR_TAG,
    INFEASIBLE_ATTR,
    KIND_TAG,
    SPACE_HASH_TAG,
    STUDY_TAG,
    TARGET_LATENCY_ATTR,
    TIMED_OUT_AFTER_TAG,
    TRIAL_NUMBER_TAG,
    TRIAL_STATE_TAG,
    WORKER_TAG,
)
from automl_tasks.core.tracking import log_child_run, mlflow_client
from automl_tasks.search.budget import is_search_trial, read_lost_trials
from automl_tasks.search.plan import SearchPlan

log = logging.getLogger(__name__)

#: concurrent child-run writes to MLflow's tracking server
RECORD_THREADS = 4
#: the error of a trial failed because its worker stopped beating its heartbeat
DEAD_WORKER_ERROR = "its worker stopped beating its heartbeat (the worker or its machine died)"
_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}


def mark_worker(trial: Any, worker_index: int) -> None:
    """Record on a reserved trial which worker runs it (the one fact of its child run that
    Optuna does not keep)."""
    trial.set_user_attr(WORKER_TAG, worker_index)


class TrialRuns:
    """Writes the child runs of a study's finished trials, each once."""

    def __init__(self, ws: Workspace, plan: SearchPlan, study: Any) -> None:
        # a trial's child run would print two "View run" lines and cost one more request
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self._ws, self._plan, self._study = ws, plan, study
        self._recorded: set[int] | None = None

    def _already_recorded(self) -> set[int]:
        """Trial numbers with a whole child run under the pipeline run (a job estimator
        retried, or a round MLflow failed). A stub a failed write left (created, but its
        metrics and kind tag never arrived) is deleted, so the trial is written once again."""
        client = mlflow_client(self._ws)
        plan = self._plan
        where = f"tags.`mlflow.parentRunId` = '{plan.parent_run_id}' and tags.`{STUDY_TAG}` = '{plan.study_name}'"
        numbers: set[int] = set()
        token = None
        while True:
            page = client.search_runs([plan.experiment_id], where, max_results=1000, page_token=token)
            for run in page:
                if TRIAL_NUMBER_TAG not in run.data.tags:
                    continue
                if KIND_TAG in run.data.tags:
                    numbers.add(int(run.data.tags[TRIAL_NUMBER_TAG]))
                else:
                    client.delete_run(run.info.run_id)
            token = page.token
            if not token:
                return numbers

    def record(self, trials: Iterable[Any]) -> int:
        """Write the child run of each finished trial of `trials` not recorded yet; how many.

        A run MLflow did not take is written in the next round (with a warning)."""
        pending = [t for t in trials if t.state.is_finished() and is_search_trial(t)]
        if not pending or not self._plan.parent_run_id:
            return 0
        if self._recorded is None:
            try:
                self._recorded = self._already_recorded()
            except Exception as exc:  # MLflow out of reach: the search goes on, the next round asks again
                log.warning("could not look up the trials' runs in MLflow (next round): %s", exc)
                return 0
        pending = [t for t in pending if t.number not in self._recorded]
        if not pending:
            return 0
        lost = read_lost_trials(self._study)

        errors: list[str] = []

        def write(trial: Any) -> int | None:
            try:
                log_child_run(self._ws, **self._child_run(trial, trial.number in lost))
                return trial.number
            except Exception as exc:  # tracking trouble must not stop the search; retried next round
                errors.append(f"trial {trial.number}: {type(exc).__name__}: {exc}")
                return None

        if self._ws.mlflow_uri.startswith(("http://", "https://")) and len(pending) > 1:
            # a child run is three requests, about 40 ms of waiting on the server: one after
            # another, a search of short trials outruns its record (a SQLite store takes one
            # writer at a time, so the embedded mode writes them in turn)
            with ThreadPoolExecutor(RECORD_THREADS, thread_name_prefix="trial-runs") as pool:
                written = list(pool.map(write, pending))
        else:
            written = [write(trial) for trial in pending]
        done = {number for number in written if number is not None}
        self._recorded |= done
        if errors:
            log.warning("MLflow did not take %d trial runs (written next round); %s", len(errors), errors[0])
            self._recorded = None  # the next round looks again: a failed write may have left a stub
        return len(done)

    def _child_run(self, trial: Any, lost: bool) -> dict[str, Any]:
        from optuna.trial import TrialState

        from automl_tasks.search.deployment import TrialDeployment

        plan, attrs = self._plan, trial.user_attrs
        outcome, error = trial.state.name, str(attrs.get(ERROR_TAG, ""))
        seconds = attrs.get(TIMED_OUT_AFTER_TAG)
        if trial.state == TrialState.FAIL and seconds is not None:
            outcome, error = "TIMED_OUT", f"timed out after {seconds}s by the job estimator"
        elif lost:
            error = DEAD_WORKER_ERROR
        if seconds is None and trial.datetime_start and trial.datetime_complete:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        metrics: dict[str, float] = {"duration_s": float(seconds or 0.0)}
        if trial.state == TrialState.COMPLETE:
            metrics[plan.metric] = float(trial.values[0])
        tags = {
            STUDY_TAG: plan.study_name,
            TRIAL_NUMBER_TAG: str(trial.number),
            TRIAL_STATE_TAG: outcome,
            SPACE_HASH_TAG: plan.space_hash,
        }
        if WORKER_TAG in attrs:
            tags[WORKER_TAG] = str(attrs[WORKER_TAG])
        if error:
            tags[ERROR_TAG] = error[:4000]
        if plan.deploy_target and DEPLOY_VERDICT_ATTR in attrs:
            reason = str(attrs.get(INFEASIBLE_ATTR, ""))
            deployment = TrialDeployment(
                plan.deploy_target,
                str(attrs.get(DEPLOY_ENGINE_TAG, "")),
                attrs.get(TARGET_LATENCY_ATTR),
                str(attrs[DEPLOY_VERDICT_ATTR]),
                deployable=True,  # not part of the run's record
                reason=reason,
            )
            metrics.update(deployment.metrics())
            tags.update(deployment.tags())
        return {
            "experiment_id": plan.experiment_id,
            "parent_run_id": plan.parent_run_id,
            "name": f"trial-{trial.number}",
            "params": trial.params,
            "metrics": metrics,
            "tags": tags,
            "status": _STATUS.get(outcome, "FAILED"),
        }


def record_trials(ws: Workspace, study_name: str) -> int:
    """Write the child runs of a study's finished trials not recorded yet (for searches run
    without a job estimator: the in-process pipelines, benchmarks); how many."""
    from automl_tasks.search.storage import load_study

    study, plan = load_study(ws.optuna_uri, study_name, settings=ws.search)
    return TrialRuns(ws, plan, study).record(study.get_trials(deepcopy=False))
