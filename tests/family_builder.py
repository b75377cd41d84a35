"""Build a small registered model family in-process (no Airflow), for serving tests."""

from __future__ import annotations

import time

import automl_tasks.pipelines.registration as task_estimator
from automl_tasks.core.settings import Workspace
from automl_tasks.pipelines.intake import PreprocessResult, finish_parent_run, preprocess
from automl_tasks.pipelines.registration import RegisteredModel
from automl_tasks.pipelines.requests import NoCodeRequest
from automl_tasks.search import run_worker, start_search, watch_search
from automl_tasks.search.plan import SearchPlan, build_plan

LINEAR_SPACE = """
params:
  - {name: scaling, type: string, range: [minmax]}
  - name: model
    type: string
    range: [linear]
    submodule:
      linear:
        - {name: C, type: float_log, range: [0.0001, 0.001], default: 0.0005}
"""
#: LightGBM only, the default space's ranges: a good model in well under a second a trial.
#: The default space's seeded second draw is the torch MLP (10-45 s a trial on 2 busy cores);
#: tests that need a good family but not the MLP use this instead.
LIGHTGBM_SPACE = """
params:
  - name: model
    type: string
    range: [lightgbm]
    submodule:
      lightgbm:
        - {name: n_estimators, type: int_log, range: [30, 400], default: 100}
        - {name: learning_rate, type: float_log, range: [0.01, 0.3], default: 0.1}
        - {name: num_leaves, type: int_log, range: [4, 128], default: 31}
        - {name: min_child_samples, type: int_log, range: [2, 60], default: 20}
"""


def run_search(
    ws: Workspace,
    dataset: str,
    family: str,
    space: str = "",
    *,
    target: str = "",
    n_trials: int = 2,
    tag: str = "",
    deploy_target: str = "",
) -> tuple[SearchPlan, PreprocessResult, str]:
    """Preprocess `dataset` and search `n_trials` trials with one worker (on `deploy_target`
    when given); returns the plan, the intake result and the run's name."""
    request = NoCodeRequest(
        dataset=dataset,
        n_trials=n_trials,
        n_workers=1,
        family=family,
        search_space=space,
        **({"target": target} if target else {}),
    )
    run_name = f"test-{tag or time.time_ns()}"
    pre = preprocess(ws, request, dag_run_id=run_name)
    space_obj = request.space()
    plan = build_plan(
        f"{family}-{run_name}",
        pre,
        metric=pre.metric,
        space=space_obj,
        space_yaml=request.space_text(),
        n_trials=n_trials,
        n_workers=1,
        time_budget_s=300,
        seed=0,
        strategy="tpe",
        deploy_target=deploy_target,
    )
    start_search(ws.optuna_uri, plan, space_obj)
    run_worker(ws, plan.study_name, 0)
    watch_search(ws, plan.study_name, poll_s=0.2)
    return plan, pre, run_name


def register_search(ws: Workspace, plan: SearchPlan, pre: PreprocessResult, run_name: str) -> RegisteredModel:
    """The task estimator on a finished search (see `run_search`), then the run closed."""
    registered = task_estimator.train_and_register(
        ws, plan.study_name, dag_run_id=run_name, dataset_version=pre.dataset_version
    )
    finish_parent_run(ws, pre.parent_run_id)
    return registered


def search_and_register(
    ws: Workspace, dataset: str, family: str, space: str = "", **options
) -> tuple[RegisteredModel, str]:
    """`run_search` then `register_search`: a new version of `family`; returns it and the study's name."""
    plan, pre, run_name = run_search(ws, dataset, family, space, **options)
    return register_search(ws, plan, pre, run_name), plan.study_name


def add_version(
    ws: Workspace, family: str, *, n_trials: int = 2, space: str = "", tag: str = "", dataset: str = "breast_cancer"
) -> RegisteredModel:
    """Preprocess `dataset` (breast_cancer), search `n_trials` trials, register a new version of `family`."""
    return search_and_register(ws, dataset, family, space, n_trials=n_trials, tag=tag)[0]
