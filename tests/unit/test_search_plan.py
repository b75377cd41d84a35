"""`build_plan`: every pipeline's SearchPlan from its intake step's result, the same way."""

from __future__ import annotations

import time

from automl_tasks.estimators import TABULAR_ESTIMATOR
from automl_tasks.search.plan import SearchPlan, build_plan
from automl_tasks.search_space import default_tabular_space

INTAKE = {
    "family": "fam",
    "dataset_path": "/data/fam.parquet",
    "dataset_uri": "dataset://fam@0123",
    "target": "label",
    "task_type": "regression",
    "experiment_id": "7",
    "parent_run_id": "run-1",
    "metric": "r2",
}


def test_the_plan_follows_the_intake_result_and_the_request():
    space = default_tabular_space()
    before = time.time()
    plan = build_plan(
        "fam-run",
        INTAKE,
        metric="rmse",
        space=space,
        space_yaml="params: []",
        n_trials=12,
        n_workers=3,
        time_budget_s=60,
        seed=5,
        strategy="gp",
        algorithm="pkg.mod:Estimator",
        run_epochs=4,
    )
    assert (plan.study_name, plan.family, plan.dataset_uri) == ("fam-run", "fam", "dataset://fam@0123")
    assert (plan.data.path, plan.data.target, plan.data.task_type) == ("/data/fam.parquet", "label", "regression")
    assert plan.data.split_seed == plan.seed == 5  # the search's seed fixes its splits
    assert (plan.metric, plan.direction) == ("rmse", "minimize")
    assert (plan.space_yaml, plan.space_hash) == ("params: []", space.hash)
    assert (plan.n_trials, plan.n_workers, plan.time_budget_s) == (12, 3, 60)
    assert before + 60 <= plan.deadline <= time.time() + 60
    assert (plan.experiment_id, plan.parent_run_id) == ("7", "run-1")
    assert (plan.strategy, plan.algorithm, plan.run_epochs) == ("gp", "pkg.mod:Estimator", 4)
    assert SearchPlan.from_json(plan.to_json()) == plan


def test_defaults_are_the_tabular_search_without_fidelity():
    plan = build_plan(
        "s",
        INTAKE,
        metric="r2",
        space=default_tabular_space(),
        space_yaml="",
        n_trials=1,
        n_workers=1,
        time_budget_s=10,
        seed=0,
        strategy="tpe",
    )
    assert (plan.algorithm, plan.run_epochs, plan.direction) == (TABULAR_ESTIMATOR, None, "maximize")
