"""The Study page's trial table (search/trial_table): a trial the fold race stopped shows why,
and neither its last fold's score nor the best trial comes from it."""

from __future__ import annotations

from optuna.trial import TrialState

from automl_tasks.core.tags import ERROR_TAG
from automl_tasks.search import load_study, start_search
from automl_tasks.search.trial_table import trial_rows
from tests.unit.test_search_engine import make_plan

STOPPED = "stopped after fold 2 of 5 (fold race: its folds so far lose to those of the best trial)"


def test_a_stopped_trial_has_no_score_and_is_never_the_best(workspace, breast_cancer_frame):
    plan, space = make_plan(workspace, breast_cancer_frame, name="table", race_folds=True)
    start_search(workspace.optuna_uri, plan, space)
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    completed = study.ask()
    study.tell(completed, 0.90)
    stopped = study.ask()
    stopped.report(0.99, 0)
    stopped.report(0.98, 1)
    stopped.set_user_attr(ERROR_TAG, STOPPED)
    study.tell(stopped, state=TrialState.PRUNED)
    # what the guard is for: Optuna gives a pruned trial the value it last reported, here one fold's
    assert study.trials[stopped.number].value == 0.98

    table = trial_rows(workspace.optuna_uri, plan.study_name)
    rows = {row["number"]: row for row in table["trials"]}
    assert table["best"] == completed.number
    assert (rows[completed.number]["score"], rows[completed.number]["note"]) == (0.90, "")
    assert (rows[stopped.number]["state"], rows[stopped.number]["score"]) == ("pruned", None)
    assert rows[stopped.number]["note"] == STOPPED
