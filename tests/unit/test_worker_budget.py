"""A worker's budget and stop checks: as cheap as Optuna's own ask/tell, never wrong when stale."""

from __future__ import annotations

import collections
import dataclasses
import time

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from automl_tasks.core.tags import DEAD_TRIALS_ATTR, STOP_ATTR
from automl_tasks.search import run_worker, start_search
from automl_tasks.search.budget import BudgetView
from automl_tasks.search.storage import create_study, open_storage
from tests.unit.test_search_engine import make_plan, sleepy_plan

ZERO_LENGTH = """
params:
  - {name: x, type: float, range: [0, 1]}
  - {name: sleep_s, type: float_cat, range: [0.0]}
"""
TRIALS = 30


@pytest.fixture
def storage_reads(monkeypatch):
    """Counts of the storage's reads of the study: trial listings and its attributes."""
    counts: collections.Counter = collections.Counter()
    for name, key in (("_get_trials", "listings"), ("get_study_user_attrs", "attrs")):
        original = getattr(RDBStorage, name)

        def counting(self, *args, _original=original, _key=key, **kwargs):
            counts[_key] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(RDBStorage, name, counting)
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


def test_the_stop_flag_is_seen_within_the_flags_interval(workspace, breast_cancer_frame):
    plan, _ = make_plan(workspace, breast_cancer_frame, n_trials=5, name="stop")
    study = create_study(workspace.optuna_uri, plan, workspace.search)
    view = BudgetView(study, plan, started=time.time(), flags_every_s=0.2)
    assert view.stop_reason() is None
    optuna.load_study(study_name="stop", storage=workspace.optuna_uri).set_user_attr(STOP_ATTR, "user asked")
    deadline = time.monotonic() + 5
    while view.stop_reason() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert view.stop_reason() == "user asked"
