"""Workers and the job estimator on a shared Optuna storage (no Airflow needed)."""

from __future__ import annotations

import dataclasses
import threading
import time

import mlflow
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from automl_tasks.core.settings import SearchSettings
from automl_tasks.core.tags import ERROR_TAG, FORBIDDEN_ATTR, STOP_ATTR, TRIAL_NUMBER_TAG, WORKER_STOPPED_ATTR
from automl_tasks.core.threads import map_in_threads
from automl_tasks.core.tracking import ensure_experiment, mlflow_client
from automl_tasks.data import DatasetStore
from automl_tasks.estimators import DataSpec
from automl_tasks.search import SearchPlan, adaptive_timeout, load_study, run_worker, start_search, watch_search
from automl_tasks.search.budget import NO_TRIAL_FITS
from automl_tasks.search.clock import search_deadline
from automl_tasks.search.trial_runs import DEAD_WORKER_ERROR
from automl_tasks.search_space import load_search_space
from tests.sleepy_estimator import SPACE as SLEEPY_SPACE

LINEAR_ONLY = """
params:
  - {name: scaling, type: string, range: [zscore, minmax]}
  - name: model
    type: string
    range: [linear]
    submodule:
      linear:
        - {name: C, type: float_log, range: [0.01, 10.0], default: 1.0}
"""


def trial_runs(workspace, plan) -> list:
    """The MLflow child runs of the plan's pipeline run."""
    where = f"tags.`mlflow.parentRunId` = '{plan.parent_run_id}'"
    return mlflow_client(workspace).search_runs([plan.experiment_id], where, max_results=1000)


def make_plan(
    workspace, frame, *, n_trials=6, time_budget_s=120.0, name="s1", **overrides
) -> tuple[SearchPlan, object]:
    stored = DatasetStore(workspace.datasets, workspace.dvc_remote).put("bc", frame)
    experiment_id = ensure_experiment(workspace, "bc")
    parent = mlflow_client(workspace).create_run(experiment_id, run_name="pipeline").info.run_id
    space = load_search_space(overrides.pop("space", LINEAR_ONLY))
    plan = SearchPlan(
        study_name=name,
        family="bc",
        data=DataSpec(str(stored.path), "target", "binary"),
        dataset_uri=stored.uri,
        metric="roc_auc",
        direction="maximize",
        space_yaml=overrides.pop("space_yaml", LINEAR_ONLY),
        space_hash=space.hash,
        n_trials=n_trials,
        time_budget_s=time_budget_s,
        deadline=time.time() + time_budget_s,
        n_workers=1,
        experiment_id=experiment_id,
        parent_run_id=parent,
        **overrides,
    )
    return plan, space


#: the test estimator whose trials sleep (or spin) as their configuration says
SLEEPY_ESTIMATOR = "tests.sleepy_estimator:SleepyEstimator"


def sleepy_plan(workspace, frame, *, space: str, **overrides) -> tuple[SearchPlan, object]:
    """`make_plan` for a study of the sleepy test estimator over the space YAML `space`, whose
    trials are never timed out as stragglers (their length is the point of these studies)."""
    return make_plan(
        workspace,
        frame,
        space=space,
        space_yaml=space,
        algorithm=SLEEPY_ESTIMATOR,
        min_trial_timeout_s=600,
        **overrides,
    )


def test_workers_spend_the_budget_and_log_child_runs(workspace, breast_cancer_frame):
    plan, space = make_plan(workspace, breast_cancer_frame, n_trials=6)
    summary = start_search(workspace.optuna_uri, plan, space)
    assert summary["enqueued"] == 1  # the default configuration
    outcome_box = {}
    watcher = threading.Thread(
        target=lambda: outcome_box.update(o=watch_search(workspace, plan.study_name, poll_s=0.2))
    )
    watcher.start()
    result = run_worker(workspace, plan.study_name, 0)
    watcher.join(timeout=60)
    outcome = outcome_box["o"]
    assert result.evaluated == 6 and outcome.complete == 6
    assert outcome.stop_reason == "trial budget of 6 spent"
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    first = study.trials[0]
    assert first.params == space.default_config()
    assert first.user_attrs.get("loopml.origin") == "default"
    runs = mlflow.search_runs(
        experiment_ids=[plan.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{plan.parent_run_id}'"
    )
    assert len(runs) == 6
    assert set(runs["tags.loopml.trial_state"]) == {"COMPLETE"}
    assert set(runs["tags.loopml.worker"]) == {"0"}
    assert runs["metrics.roc_auc"].between(0.9, 1.0).all()
    # a job estimator run again (an Airflow retry) records nothing twice
    assert watch_search(workspace, plan.study_name, poll_s=0.2).complete == 6
    assert len(trial_runs(workspace, plan)) == 6


def test_second_search_is_warm_started_from_the_first(workspace, breast_cancer_frame):
    plan, space = make_plan(workspace, breast_cancer_frame, n_trials=4, name="first")
    start_search(workspace.optuna_uri, plan, space)
    run_worker(workspace, plan.study_name, 0)
    plan2, _ = make_plan(workspace, breast_cancer_frame, n_trials=4, name="second")
    summary = start_search(workspace.optuna_uri, plan2, space)
    assert summary["warm_start"] >= 1
    study, _ = load_study(workspace.optuna_uri, "second")
    origins = [t.user_attrs.get("loopml.origin") for t in study.get_trials(states=(TrialState.WAITING,))]
    assert "warm_start" in origins


def test_time_budget_stops_the_search(workspace, breast_cancer_frame):
    plan, space = make_plan(workspace, breast_cancer_frame, n_trials=1000, time_budget_s=3.0)
    start_search(workspace.optuna_uri, plan, space)
    started = time.time()
    result = run_worker(workspace, plan.study_name, 0)
    outcome = watch_search(workspace, plan.study_name, poll_s=0.2)
    assert time.time() - started < 30
    assert 0 < result.evaluated < 1000
    assert outcome.stop_reason.startswith("time budget")


def test_straggler_is_timed_out_by_the_job_estimator(workspace, breast_cancer_frame):
    plan, space = make_plan(workspace, breast_cancer_frame, n_trials=5, straggler_k=0.0, min_trial_timeout_s=1.0)
    start_search(workspace.optuna_uri, plan, space)
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    for _ in range(3):  # three quick completed trials give the adaptive limit
        trial = study.ask()
        space.sample(trial)
        study.tell(trial, 0.9)
    straggler = study.ask()  # never told: a worker stuck on it
    space.sample(straggler)
    filler = study.ask()
    space.sample(filler)
    study.tell(filler, 0.8)
    outcome = watch_search(workspace, plan.study_name, poll_s=0.3)
    assert outcome.timed_out == 1
    frozen = study._storage.get_trial(straggler._trial_id)
    assert frozen.state == TrialState.FAIL
    assert frozen.user_attrs["loopml.timed_out_after_s"] >= 1.0
    (run,) = [r for r in trial_runs(workspace, plan) if r.data.tags[TRIAL_NUMBER_TAG] == str(straggler.number)]
    assert run.data.tags["loopml.trial_state"] == "TIMED_OUT" and run.info.status == "FAILED"
    assert run.data.metrics["duration_s"] >= 1.0 and "timed out after" in run.data.tags[ERROR_TAG]


def test_dead_worker_trial_fails_after_heartbeat_grace(workspace, breast_cancer_frame):
    fast = SearchSettings(heartbeat_interval_s=1, heartbeat_grace_s=2)
    # a budget of 1, spent by `done`: the search ends as soon as the orphan is failed
    plan, space = make_plan(workspace, breast_cancer_frame, n_trials=1, min_trial_timeout_s=600)
    start_search(workspace.optuna_uri, plan, space)
    study, _ = load_study(workspace.optuna_uri, plan.study_name, settings=fast)
    orphan = study.ask()  # its worker beats once, then dies
    study._storage.record_heartbeat(orphan._trial_id)
    done = study.ask()
    study.tell(done, 0.95)
    outcome = watch_search(dataclasses.replace(workspace, search=fast), plan.study_name, poll_s=0.5)
    assert outcome.stale == 1
    assert study._storage.get_trial(orphan._trial_id).state == TrialState.FAIL
    # Optuna's RetryHeartbeatStaleTrialCallback enqueued it again, once
    (retry,) = [t for t in study.trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None]
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == orphan.number
    # both trials are in MLflow, the dead worker's with why it failed (the worker could not say)
    runs = {r.data.tags[TRIAL_NUMBER_TAG]: r for r in trial_runs(workspace, plan)}
    assert set(runs) == {str(orphan.number), str(done.number)}
    assert runs[str(orphan.number)].info.status == "FAILED"
    assert runs[str(orphan.number)].data.tags[ERROR_TAG] == DEAD_WORKER_ERROR
    assert runs[str(done.number)].data.metrics["roc_auc"] == 0.95


FORBIDDING = """
params:
  - {name: x, type: float, range: [0, 1]}
  - {name: sleep_s, type: float_cat, range: [0.0]}
  - {name: k, type: int_cat, range: [1, 2, 3, 4]}
  - {name: mode, type: string, range: [p, q]}
forbidden:
  - {k: 2, mode: p}
  - {k: 3, mode: p}
  - {k: 4, mode: p}
"""


def test_forbidden_draws_do_not_count_against_the_trial_budget(workspace, breast_cancer_frame):
    plan, space = sleepy_plan(
        workspace, breast_cancer_frame, space=FORBIDDING, n_trials=20, name="forbid", strategy="random"
    )
    start_search(workspace.optuna_uri, plan, space)
    box = {}
    watcher = threading.Thread(target=lambda: box.update(o=watch_search(workspace, plan.study_name, poll_s=0.2)))
    watcher.start()
    summary = run_worker(workspace, plan.study_name, 0)
    watcher.join(timeout=120)
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    forbidden = [t for t in study.trials if t.user_attrs.get(FORBIDDEN_ATTR)]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(forbidden) >= 3, "the space forbids 3 of 8 branches: some draws must have been refused"
    assert all(t.state == TrialState.PRUNED and t.params["mode"] == "p" and t.params["k"] > 1 for t in forbidden)
    assert len(complete) == 20 and summary.evaluated == 20, "a user asking for 20 trials gets 20 evaluated ones"
    assert box["o"].complete == 20 and box["o"].stop_reason == "trial budget of 20 spent"


def test_the_search_ends_with_its_workers_when_no_trial_fits_the_time_left(workspace, breast_cancer_frame):
    """Trials of 3 s on an 8 s budget: after two the worker cannot finish a third in time
    and stops with ~2 s left; the job estimator ends then instead of waiting out the budget
    (the stages after the search waited for it)."""
    plan, space = sleepy_plan(workspace, breast_cancer_frame, space=SLEEPY_SPACE, n_trials=1000, time_budget_s=8.0)
    start_search(workspace.optuna_uri, plan, space)
    box = {}

    def watch() -> None:
        box["outcome"] = watch_search(workspace, plan.study_name, poll_s=0.2)
        box["ended"] = time.time()

    watcher = threading.Thread(target=watch)
    watcher.start()
    summary = run_worker(workspace, plan.study_name, 0)
    watcher.join(timeout=60)
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    deadline = search_deadline(study, plan)
    assert summary.evaluated == 2
    assert box["ended"] < deadline - 0.5, "the job estimator waited for the deadline after its worker stopped"
    assert box["outcome"].stop_reason.startswith("time budget of 8s spent: " + NO_TRIAL_FITS)
    assert study.user_attrs[STOP_ATTR] == box["outcome"].stop_reason
    late = run_worker(workspace, plan.study_name, 1)  # a worker started after the end (a retry) stops at once
    assert late.evaluated == 0
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    assert study.user_attrs[f"{WORKER_STOPPED_ATTR}.1"] == box["outcome"].stop_reason


def test_adaptive_timeout_rule():
    plan = SearchPlan.__new__(SearchPlan)
    object.__setattr__(plan, "straggler_k", 3.0)
    object.__setattr__(plan, "min_trial_timeout_s", 5.0)
    assert adaptive_timeout([1.0, 2.0], plan) is None
    assert adaptive_timeout([1.0, 1.0, 1.0], plan) == 5.0
    assert adaptive_timeout([10.0, 20.0, 30.0], plan) == pytest.approx(20 + 3 * 8.1649658, rel=1e-6)


def test_trials_are_recorded_once_mlflow_answers_again(workspace, breast_cancer_frame, monkeypatch):
    from automl_tasks.search.trial_runs import TrialRuns, record_trials

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    plan, space = make_plan(workspace, breast_cancer_frame, n_trials=2, name="offline")
    start_search(workspace.optuna_uri, plan, space)
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    for value in (0.7, 0.8):
        trial = study.ask()
        space.sample(trial)
        study.tell(trial, value)
    unreachable = dataclasses.replace(workspace, mlflow_uri="http://127.0.0.1:9")
    assert TrialRuns(unreachable, plan, study).record(study.trials) == 0  # a warning, not a crash
    assert record_trials(workspace, plan.study_name) == 2
    assert record_trials(workspace, plan.study_name) == 0, "recorded twice"
    assert sorted(r.data.metrics["roc_auc"] for r in trial_runs(workspace, plan)) == [0.7, 0.8]


def test_a_trial_run_cut_off_mid_write_is_written_once_in_the_next_round(workspace, breast_cancer_frame, monkeypatch):
    from mlflow import MlflowClient

    from automl_tasks.search.trial_runs import TrialRuns

    plan, space = make_plan(workspace, breast_cancer_frame, n_trials=1, name="cut-off")
    start_search(workspace.optuna_uri, plan, space)
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    trial = study.ask()
    space.sample(trial)
    study.tell(trial, 0.75)
    runs = TrialRuns(workspace, plan, study)
    with monkeypatch.context() as patch:  # MLflow fails after the run was created
        patch.setattr(MlflowClient, "log_batch", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("gone")))
        assert runs.record(study.trials) == 0
    assert [r.info.status for r in trial_runs(workspace, plan)] == ["KILLED"]  # the stub
    assert runs.record(study.trials) == 1
    (run,) = trial_runs(workspace, plan)
    assert run.info.status == "FINISHED" and run.data.metrics["roc_auc"] == 0.75
    assert runs.record(study.trials) == 0


def test_two_job_estimators_of_a_study_watch_one_after_the_other_and_record_each_trial_once(
    workspace, breast_cancer_frame, monkeypatch
):
    """An Airflow try orphaned by a dead scheduler still runs while the next try starts: the
    study's lease makes the second wait for the first, which would otherwise write every
    trial's MLflow run a second time."""
    from automl_tasks.search import job_estimator

    plan, space = make_plan(workspace, breast_cancer_frame, n_trials=4)
    start_search(workspace.optuna_uri, plan, space)
    run_worker(workspace, plan.study_name, 0)
    watching, original = [], job_estimator._watch

    def timed_watch(*args):
        started = time.monotonic()
        time.sleep(0.5)  # long enough for the other watcher to start beside it, were it let in
        outcome = original(*args)
        watching.append((started, time.monotonic()))
        return outcome

    monkeypatch.setattr(job_estimator, "_watch", timed_watch)
    outcomes = map_in_threads(lambda _: watch_search(workspace, plan.study_name, poll_s=0.1), [0, 1])
    assert [o.complete for o in outcomes] == [4, 4]
    (first, second) = sorted(watching)
    assert second[0] >= first[1], "the second job estimator watched while the first still did"
    assert len(trial_runs(workspace, plan)) == 4


def test_a_lease_held_past_the_wait_is_named_and_the_search_is_watched_anyway(
    workspace, breast_cancer_frame, monkeypatch, caplog
):
    from automl_tasks.core.shared_lock import shared_lock
    from automl_tasks.search import job_estimator

    plan, space = make_plan(workspace, breast_cancer_frame, n_trials=2)
    start_search(workspace.optuna_uri, plan, space)
    run_worker(workspace, plan.study_name, 0)
    monkeypatch.setattr(job_estimator, "JOB_ESTIMATOR_LEASE_WAIT_S", 1.0)
    name = plan.study_name
    with shared_lock(workspace, f"loopml.job_estimator:{name}", f"job_estimator-{name}.lock") as held:
        assert held
        assert watch_search(workspace, name, poll_s=0.1).complete == 2
    assert f"another job estimator of study {name} still held its lease after 1 s" in caplog.text
