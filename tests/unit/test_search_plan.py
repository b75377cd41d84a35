"""`build_plan`: every pipeline's SearchPlan from its intake step's result, the same way."""

from __future__ import annotations

import time

from automl_tasks.estimators import TABULAR_ESTIMATOR
from automl_tasks.pipelines.intake import PreprocessResult
from automl_tasks.pipelines.retrain import RetrainIntake
from automl_tasks.search.plan import SearchPlan, build_plan
from automl_tasks.search_space import default_tabular_space

INTAKE = PreprocessResult(
    dataset_uri="dataset://fam@0123",
    dataset_version="0123",
    dataset_path="/data/fam.parquet",
    new_version=True,
    task_type="regression",
    metric="r2",
    target="label",
    rows=100,
    columns=4,
    family="fam",
    experiment_id="7",
    parent_run_id="run-1",
    profile_path="/runs/profiles/0123/profile.json",
)


def tiny_plan(intake, **options) -> SearchPlan:
    """A one-trial plan with every optional argument left at its default, but `options`."""
    return build_plan(
        "s",
        intake,
        metric="r2",
        space=default_tabular_space(),
        space_yaml="",
        n_trials=1,
        n_workers=1,
        time_budget_s=10,
        seed=0,
        strategy="tpe",
        **options,
    )


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
    plan = tiny_plan(INTAKE)
    assert (plan.algorithm, plan.run_epochs, plan.direction) == (TABULAR_ESTIMATOR, None, "maximize")


def test_intake_results_cross_xcom_as_ids_and_uris_only():
    """Steps pass the intake result as a dataclass; XCom carries its JSON form, without this
    host's file paths (`from_dict` resolves them on the reading host: test_feature_pipeline)."""
    import dataclasses
    import json

    xcom = json.loads(json.dumps(INTAKE.to_dict()))
    local = {"dataset_path", "profile_path", "feature_pipeline_path"}
    assert not local & set(xcom) and not [v for v in xcom.values() if str(v).startswith("/")], xcom
    assert {f.name for f in dataclasses.fields(PreprocessResult)} - set(xcom) == local
    retrain = RetrainIntake(
        **dataclasses.asdict(INTAKE),
        parent_version="3",
        parent_study="fam-s",
        eval_uri="dataset://e@1",
        reference_uri="r",
    )
    assert json.loads(json.dumps(retrain.to_dict())) == {
        **xcom,
        "parent_version": "3",
        "parent_study": "fam-s",
        "eval_uri": "dataset://e@1",
        "reference_uri": "r",
    }
    assert tiny_plan(retrain).parent_run_id == "run-1"
