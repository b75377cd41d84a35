"""A worker's budget and stop checks: as cheap as Optuna's own ask/tell, never wrong when stale."""

from __future__ import annotations

import collections
import dataclasses
import time

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState

from automl_tasks.core.settings import SearchSettings
from automl_tasks.core.store_urls import JOURNAL_PREFIX
from automl_tasks.core.tags import DEAD_TRIALS_ATTR, OVER_BUDGET_ATTR, STOP_ATTR
from automl_tasks.search import run_worker, start_search
from automl_tasks.search.budget import BudgetView
from automl_tasks.search.clock import search_deadline
from automl_tasks.search.storage import create_study, fail_dead_workers_trials, open_storage
from tests.unit.test_search_engine import make_plan, sleepy_plan
from tests.worker_processes import wait_until

ZERO_LENGTH = """
params:
  - {name: x, type: float, range: [0, 1]}
  - {name: sleep_s, type: float_cat, range: [0.0]}
"""
TRIALS = 30


@pytest.fixture
def storage_reads(monkeypatch, workspace):
    """Counts of the storage's reads of the study: trial listings and its attributes (on the
    storage class the workspace uses: the journal's listing, or the RDB storage's query)."""
    counts: collections.Counter = collections.Counter()
    journal = workspace.optuna_uri.startswith(JOURNAL_PREFIX)
    cls, listing = (JournalStorage, "get_all_trials") if journal else (RDBStorage, "_get_trials")
    for name, key in ((listing, "listings"), ("get_study_user_attrs", "attrs")):
        original = getattr(cls, name)

        def counting(self, *args, _original=original, _key=key, **kwargs):
            counts[_key] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counting)
    return counts


def test_a_worker_lists_the_study_no_more_than_optuna_ask_and_tell(workspace, breast_cancer_frame, storage_reads):
    plan, space = sleepy_plan(workspace, breast_cancer_frame, space=ZERO_LENGTH, n_trials=TRIALS, name="cheap")
    start_search(workspace.optuna_uri, plan, space)
    storage_reads.clear()
    started = time.monotonic()
    assert run_worker(workspace, plan.study_name, 0).evaluated == TRIALS
    seconds = time.monotonic() - started
    worker = dict(storage_reads)

    # the same trials through Optuna's ask-and-tell interface with the plan's sampler
    study = create_study(workspace.optuna_uri, dataclasses.replace(plan, study_name="plain"), workspace.search)
    storage = open_storage(workspace.optuna_uri, workspace.search)
    storage_reads.clear()
    for _ in range(TRIALS):
        trial = study.ask()
        space.sample(trial)
        storage.record_heartbeat(trial._trial_id)
        study.tell(trial, 0.5)
    plain = dict(storage_reads)

    # the worker's own listings: its first look, the last confirmation that the budget is
    # spent, one progress line a second (with the best trial)
    assert worker["listings"] <= plain["listings"] + 4 + 2 * (seconds + 1), (worker, plain, seconds)
    # the stop flag and the trials lost to dead workers: once a second, not once a trial
    assert worker["attrs"] <= 6 + seconds, (worker, seconds)


def test_a_stale_view_never_parks_a_worker_when_the_budget_has_room(workspace, breast_cancer_frame):
    plan, _ = make_plan(workspace, breast_cancer_frame, n_trials=2, name="stale")
    study = create_study(workspace.optuna_uri, plan, workspace.search)
    done = study.ask()
    study.tell(done, 0.9)
    running = study.ask()
    view = BudgetView(study, plan, started=time.time(), flags_every_s=3600)
    assert view.state() == "wait", "the budget is full while another worker's trial runs"
    # that trial's worker dies: the trial is failed and no longer counts (the view's copies are stale)
    study.set_user_attr(DEAD_TRIALS_ATTR, [running.number])
    study.tell(running, state=TrialState.FAIL)
    assert view.state() == "open"
    retry = study.ask()
    assert not view.over_budget(retry.number)


def _budget_full_with_a_stale_trial(workspace, frame, name: str):
    """(plan, study, trial): a budget of 2 trials, one complete and one running whose
    heartbeat went stale (1 s grace period)."""
    settings = SearchSettings(heartbeat_interval_s=1, heartbeat_grace_s=1)
    plan, _ = make_plan(workspace, frame, n_trials=2, name=name)
    study = create_study(workspace.optuna_uri, plan, settings)
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.9)
    stale = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.record_heartbeat(stale._trial_id)
    wait_until(lambda: study._storage._get_stale_trial_ids(study._study_id), 30, "the trial's heartbeat to go stale")
    return plan, study, stale


def test_no_worker_finds_the_budget_spent_while_a_dead_workers_trial_is_failed_and_retried(
    workspace, breast_cancer_frame, monkeypatch
):
    """Each write of `fail_dead_workers_trials` is followed by a worker's look at the budget:
    none may see it spent (it would leave and strand the retry; Optuna's `fail_stale_trials`
    fails the trial before its callback enqueues the retry, and a CI run left that way)."""
    plan, study, dead = _budget_full_with_a_stale_trial(workspace, breast_cancer_frame, "dead")
    storage = study._storage

    verdicts = []
    for name in ("set_trial_state_values", "set_study_user_attr", "create_new_trial"):
        write = getattr(storage, name)

        def looking_after(*args, _write=write, **kwargs):
            result = _write(*args, **kwargs)
            verdicts.append(BudgetView(study, plan, started=time.time(), flags_every_s=0).state())
            return result

        monkeypatch.setattr(storage, name, looking_after)
    assert [t.number for t in fail_dead_workers_trials(study)] == [dead.number]
    monkeypatch.undo()

    assert len(verdicts) >= 3 and "spent" not in verdicts, verdicts
    assert verdicts[-1] == "open" and study.get_trials()[dead.number].state == TrialState.FAIL
    retry = study.ask()
    assert retry.params == dead.params, "the next trial a worker reserves is the dead trial's retry"


def test_a_stale_trial_that_finishes_while_it_is_being_failed_keeps_its_result_and_its_retry_is_given_back(
    workspace, breast_cancer_frame, monkeypatch
):
    plan, study, slow = _budget_full_with_a_stale_trial(workspace, breast_cancer_frame, "slow")
    storage = study._storage
    enqueue = storage.create_new_trial

    def its_worker_finishes_meanwhile(*args, **kwargs):
        trial_id = enqueue(*args, **kwargs)
        study.tell(slow, 0.8)  # the worker was slow, not dead
        return trial_id

    monkeypatch.setattr(storage, "create_new_trial", its_worker_finishes_meanwhile)
    assert fail_dead_workers_trials(study) == []
    monkeypatch.undo()

    assert study.get_trials()[slow.number].state == TrialState.COMPLETE
    assert slow.number not in study.user_attrs.get(DEAD_TRIALS_ATTR, [])
    (retry,) = study.get_trials()[2:]
    assert retry.state == TrialState.PRUNED and retry.user_attrs[OVER_BUDGET_ATTR]
    assert BudgetView(study, plan, started=time.time()).state() == "spent"


def test_a_trial_reserved_after_the_budget_filled_is_over_it(workspace, breast_cancer_frame):
    plan, _ = make_plan(workspace, breast_cancer_frame, n_trials=2, name="race")
    study = create_study(workspace.optuna_uri, plan, workspace.search)
    view = BudgetView(study, plan, started=time.time())
    first, second = study.ask(), study.ask()
    assert not view.over_budget(first.number) and not view.over_budget(second.number)
    third = study.ask()  # another worker checked the budget at the same instant
    assert view.over_budget(third.number)
    study.tell(first, state=TrialState.FAIL)
    assert view.over_budget(third.number), "a failed trial still counts against the budget"


def test_the_deadline_spends_the_budget(workspace, breast_cancer_frame):
    plan, _ = make_plan(workspace, breast_cancer_frame, n_trials=100, name="late", time_budget_s=1.0)
    study = create_study(workspace.optuna_uri, plan, workspace.search)
    assert BudgetView(study, plan, started=time.time()).state() == "open"
    assert BudgetView(study, plan, started=time.time() - 2.0).state() == "spent"


TWO_SECONDS = """
params:
  - {name: x, type: float, range: [0, 1]}
  - {name: sleep_s, type: float_cat, range: [2.0]}
"""


def test_a_trial_expected_to_end_after_the_deadline_is_given_back_not_run(workspace, breast_cancer_frame):
    """2 s trials, a 5.5 s budget: two fit; a third would end after the deadline (and the search
    would wait for it), so the worker gives it back and stops."""
    plan, space = sleepy_plan(
        workspace, breast_cancer_frame, space=TWO_SECONDS, n_trials=100, name="in-time", time_budget_s=5.5
    )
    start_search(workspace.optuna_uri, plan, space)
    summary = run_worker(workspace, plan.study_name, 0)
    study = optuna.load_study(study_name=plan.study_name, storage=open_storage(workspace.optuna_uri))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    given_back = [t for t in study.trials if t.user_attrs.get(OVER_BUDGET_ATTR)]
    assert summary.evaluated == len(complete) >= 1  # two, unless the machine slows the first down
    assert len(given_back) == 1 and given_back[0].state == TrialState.PRUNED
    assert max(t.datetime_complete for t in complete).timestamp() <= search_deadline(study, plan)


def test_a_trial_is_judged_by_the_length_of_its_own_model_familys_trials():
    import datetime
    from types import SimpleNamespace

    from optuna.distributions import CategoricalDistribution

    study = optuna.create_study()
    now = datetime.datetime.now()
    for model, seconds in (("linear", 0.5), ("linear", 0.7), ("linear", 0.6), ("random_forest", 9.0)):
        study.add_trial(
            optuna.trial.FrozenTrial(
                number=0,
                state=TrialState.COMPLETE,
                value=0.8,
                datetime_start=now,
                datetime_complete=now + datetime.timedelta(seconds=seconds),
                params={"model": model},
                distributions={"model": CategoricalDistribution(["linear", "random_forest", "mlp"])},
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=0,
            )
        )
    view = BudgetView(
        study, SimpleNamespace(time_budget_s=4.0, n_trials=100), started=time.time(), family_params=("model",)
    )
    view.over_budget(study.trials[-1].number + 1)  # the listing a worker's reservation makes
    assert view.finishes_in_time({"model": "linear", "model.linear.C": 1.0}) == (True, 0.6)  # the median
    assert view.finishes_in_time({"model": "random_forest"}) == (False, 9.0)
    assert view.finishes_in_time({"model": "mlp"}) == (True, None)  # no trial of it yet: it gets its chance
    assert view.any_trial_fits()
    from pathlib import Path

    from automl_tasks.search.budget import branch_params
    from automl_tasks.search_space import load_search_space

    default_space = Path(__file__).parents[2] / "automl_tasks" / "search_space" / "default_tabular.yaml"
    assert branch_params(load_search_space(default_space.read_text())) == ("model",)
    late = BudgetView(
        study, SimpleNamespace(time_budget_s=0.3, n_trials=100), started=time.time(), family_params=("model",)
    )
    late.over_budget(study.trials[-1].number + 1)
    assert not late.any_trial_fits()


def test_the_stop_flag_is_seen_within_the_flags_interval(workspace, breast_cancer_frame):
    plan, _ = make_plan(workspace, breast_cancer_frame, n_trials=5, name="stop")
    study = create_study(workspace.optuna_uri, plan, workspace.search)
    view = BudgetView(study, plan, started=time.time(), flags_every_s=0.2)
    assert view.stop_reason() is None
    optuna.load_study(study_name="stop", storage=open_storage(workspace.optuna_uri)).set_user_attr(
        STOP_ATTR, "user asked"
    )
    deadline = time.monotonic() + 5
    while view.stop_reason() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert view.stop_reason() == "user asked"
