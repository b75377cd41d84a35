"""The portfolio warm start: a new search starts from the best configurations of the
nearest earlier tables of other families, where its space admits them (issue #11 item 5)."""

from __future__ import annotations

import math
from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from automl_tasks.core.tags import ORIGIN_TAG, PORTFOLIO_SOURCE_ATTR, TRAITS_ATTR
from automl_tasks.search import start_search
from automl_tasks.search.portfolio import (
    BUILTIN_SOURCE,
    PORTFOLIO_SIZE,
    TableTraits,
    builtin_configs,
    portfolio_size,
)
from automl_tasks.search.storage import load_study, open_storage
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, load_search_space
from tests.family_builder import LIGHTGBM_SPACE, run_search
from tests.unit.test_search_engine import make_plan

# the default C starves the model, so the best of a few trials is another configuration
WEAK_DEFAULT_SPACE = """
params:
  - {name: scaling, type: string, range: [zscore]}
  - name: model
    type: string
    range: [linear]
    submodule:
      linear:
        - {name: C, type: float_log, range: [0.00001, 10.0], default: 0.00001}
"""


def test_traits_rank_tables_of_the_same_task_by_size_and_column_kinds():
    small = TableTraits("binary", 1_000, 20, 0.1)
    assert small.distance(TableTraits("binary", 1_200, 22, 0.1)) < small.distance(
        TableTraits("binary", 50_000, 20, 0.1)
    )
    assert small.distance(TableTraits("binary", 1_000, 20, 0.9)) > small.distance(small) == 0.0
    assert math.isinf(small.distance(TableTraits("regression", 1_000, 20, 0.1)))
    assert TableTraits.from_dict(small.to_dict()) == small
    assert TableTraits.from_dict({"rows": "many"}) is None


def test_a_space_admits_only_its_own_complete_configurations():
    space = load_search_space(WEAK_DEFAULT_SPACE)
    default = space.default_config()
    assert space.admits(default)
    assert not space.admits({**default, "model.linear.C": 100.0})  # out of range
    assert not space.admits({**default, "extra": 1})
    assert not space.admits({k: v for k, v in default.items() if k != "model.linear.C"})
    assert not load_search_space(LIGHTGBM_SPACE).admits(default)


def _trials(ws, study_name):
    study, _ = load_study(ws.optuna_uri, study_name)
    return study, study.get_trials(deepcopy=False)


def test_a_new_search_starts_from_the_best_configuration_of_a_similar_table(workspace):
    first, _, _ = run_search(workspace, "breast_cancer", "first", WEAK_DEFAULT_SPACE, n_trials=4, tag="a")
    study, trials = _trials(workspace, first.study_name)
    assert TableTraits.from_dict(study.user_attrs[TRAITS_ATTR]) == TableTraits("binary", 569, 30, 0.0)
    best = dict(study.best_trial.params)
    assert best != load_search_space(WEAK_DEFAULT_SPACE).default_config()

    second, _, _ = run_search(workspace, "breast_cancer", "second", WEAK_DEFAULT_SPACE, n_trials=2, tag="b")
    _, trials = _trials(workspace, second.study_name)
    origins = [t.user_attrs.get(ORIGIN_TAG) for t in sorted(trials, key=lambda t: t.number)]
    assert origins[:2] == ["default", "portfolio"]
    portfolio = next(t for t in trials if t.user_attrs.get(ORIGIN_TAG) == "portfolio")
    assert portfolio.params == best and portfolio.user_attrs[PORTFOLIO_SOURCE_ATTR] == first.study_name
    assert portfolio.state == TrialState.COMPLETE

    # a space that cannot hold the configuration gets none of it
    other, _, _ = run_search(workspace, "breast_cancer", "trees", LIGHTGBM_SPACE, n_trials=1, tag="c")
    _, trials = _trials(workspace, other.study_name)
    assert all(t.user_attrs.get(ORIGIN_TAG) != "portfolio" for t in trials)
    # nor does a table of another task type
    regression, _, _ = run_search(workspace, "diabetes", "reg", WEAK_DEFAULT_SPACE, n_trials=1, tag="d")
    _, trials = _trials(workspace, regression.study_name)
    assert all(t.user_attrs.get(ORIGIN_TAG) != "portfolio" for t in trials)
    assert len(optuna.get_all_study_names(open_storage(workspace.optuna_uri))) == 4


def test_the_builtin_portfolio_fits_the_default_space_for_every_task_kind():
    space = load_search_space(DEFAULT_TABULAR_SPACE.read_text())
    for task_type in ("binary", "multiclass", "regression"):
        configs = builtin_configs(task_type)
        assert len(configs) == PORTFOLIO_SIZE, task_type
        assert all(space.admits(c) for c in configs), "a built-in configuration the default space no longer holds"
        assert space.default_config() not in configs
    assert builtin_configs("binary") == builtin_configs("multiclass") != builtin_configs("regression")


# a parameter the formatter adds for a feature pipeline's group (`add_feature_params`), which
# the built-in configurations do not name
FEATURE_GROUP_PARAM = "\n  - {name: cyclic_time, type: bool, range: [false, true], default: true}\n"


@pytest.mark.parametrize("task_type", ["binary", "regression"])
def test_a_first_search_in_a_new_workspace_starts_from_the_builtin_portfolio(workspace, breast_cancer_frame, task_type):
    text = DEFAULT_TABULAR_SPACE.read_text().rstrip() + FEATURE_GROUP_PARAM
    plan, space = make_plan(
        workspace, breast_cancer_frame, n_trials=9, name=f"first_{task_type}", space=text, space_yaml=text
    )
    plan = replace(plan, data=replace(plan.data, task_type=task_type))
    summary = start_search(workspace.optuna_uri, plan, space)
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    waiting = sorted(study.get_trials(states=(TrialState.WAITING,)), key=lambda t: t.number)
    assert [t.user_attrs[ORIGIN_TAG] for t in waiting] == ["default"] + ["portfolio"] * PORTFOLIO_SIZE
    expected = [{**c, "cyclic_time": True} for c in builtin_configs(task_type)]
    assert [t.system_attrs["fixed_params"] for t in waiting[1:]] == expected
    assert {t.user_attrs[PORTFOLIO_SOURCE_ATTR] for t in waiting[1:]} == {BUILTIN_SOURCE}
    assert summary["portfolio"] == PORTFOLIO_SIZE
    # a budget of 4 trials keeps 2 for the strategy's own draws: one built-in configuration
    small, _ = make_plan(
        workspace, breast_cancer_frame, n_trials=4, name=f"small_{task_type}", space=text, space_yaml=text
    )
    small = replace(small, data=replace(small.data, task_type=task_type))
    assert start_search(workspace.optuna_uri, small, space)["portfolio"] == 1


def test_the_portfolio_takes_at_most_a_third_of_a_small_trial_budget():
    assert [portfolio_size(n) for n in (1, 2, 4, 6, 8, 9, 10_000)] == [1, 1, 1, 2, 2, 3, 3]
