"""The NoCode pipeline's planning step (the formatter, OmniForce Figure 3a).

From the checked request and the intake step's result: the trial budget (chosen from the
table's size when the form leaves it at 0), the search strategy (chosen from the space,
budget and data size when the form says 'auto', with the reason recorded on the pipeline's
MLflow run), then the study with its default and warm-start trials enqueued.
"""

from __future__ import annotations

import logging
from typing import Any

from automl_tasks.algorithms.registry import builtin_specs
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import PARENT_STUDY_TAG, SPACE_VERSION_TAG, STRATEGY_REASON_TAG, STUDY_TAG
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.estimators.tabular import CV_FOLDS
from automl_tasks.pipelines.intake import PreprocessResult
from automl_tasks.pipelines.requests import NoCodeRequest
from automl_tasks.search import choose_strategy, choose_trial_budget, start_search
from automl_tasks.search.formatter import (
    add_feature_params,
    check_warm_start_study,
    cross_validates,
    fit_space_to_budget,
    rarest_class_rows,
)
from automl_tasks.search.plan import build_plan
from automl_tasks.search_space import load_search_space
from automl_tasks.search_space.versions import record_version

log = logging.getLogger(__name__)


def deployment_goal(request: Any) -> dict[str, Any]:
    """`build_plan`'s deployment-goal arguments (and the ensemble switch) from a NoCode or HPO request."""
    return {
        "deploy_target": request.deploy_target,
        "latency_budget_ms": float(request.latency_budget_ms),
        "trade_off_latency": request.trade_off_latency,
        # an ensemble of DP-SGD members spends the sum of their epsilons (sequential
        # composition): a private search registers one model, at the epsilon asked for
        "ensemble": request.ensemble and not getattr(request, "dp_epsilon", 0),
    }


def log_deployment_goal(client: Any, run_id: str, request: Any) -> None:
    """The search's deployment goal as params of the pipeline's MLflow run (when it has one)."""
    if request.deploy_target:
        client.log_param(run_id, "deploy_target", request.deploy_target)
        client.log_param(run_id, "latency_budget_ms", request.latency_budget_ms)
        client.log_param(run_id, "trade_off_latency", request.trade_off_latency)


def plan_search(ws: Workspace, request: NoCodeRequest, pre: PreprocessResult, study_name: str) -> dict[str, Any]:
    """Create the run's study `study_name` over the table `pre` (the intake result); a summary of what was enqueued."""
    profile = pre.profile()
    fitted = fit_space_to_budget(request.searched_space_text(), profile, request.time_budget_s)
    space_text = add_feature_params(fitted.space_text, pre.feature_pipeline_path, pre.task_type)
    space = load_search_space(space_text)
    n_trials = choose_trial_budget(request.n_trials, profile)
    strategy, why = choose_strategy(request.strategy, space, n_trials, profile, trade_off=request.trade_off_latency)
    log.info("formatter: search strategy %s: %s", strategy, why)
    cross_validate = cross_validates(profile, request.time_budget_s)
    rarest = rarest_class_rows(profile)
    log.info(
        "formatter: trials are scored by %s (%d rows, %d columns,%s %ss budget)",
        f"{CV_FOLDS}-fold cross-validation" if cross_validate else "the validation split",
        profile["rows"],
        profile["columns"] - 1,
        f" rarest class {rarest} rows," if rarest is not None else "",
        request.time_budget_s,
    )
    client = mlflow_client(ws)
    client.log_param(pre.parent_run_id, "strategy", strategy)
    client.set_tag(pre.parent_run_id, STRATEGY_REASON_TAG, why)
    client.set_tag(pre.parent_run_id, STUDY_TAG, study_name)
    # the space the person asked for (before the budget fit), as a version they can edit
    requested = record_version(ws, pre.family, request.space_text(), change="searched by a pipeline run")
    client.set_tag(pre.parent_run_id, SPACE_VERSION_TAG, requested.version)
    warm_start = request.warm_start_study or None
    if warm_start is not None:
        check_warm_start_study(ws.optuna_uri, warm_start, pre.family)
        client.set_tag(pre.parent_run_id, PARENT_STUDY_TAG, warm_start)
    log_deployment_goal(client, pre.parent_run_id, request)
    plan = build_plan(
        study_name,
        pre,
        metric=pre.metric,
        space=space,
        space_yaml=space_text,
        n_trials=n_trials,
        n_workers=request.n_workers,
        time_budget_s=request.time_budget_s,
        seed=request.seed,
        strategy=strategy,
        budget_note=fitted.reason,
        cross_validate=cross_validate,
        trust_report=request.trust_report,
        resources=builtin_specs()["tabular"].resources.to_dict(),
        **deployment_goal(request),
    )
    return start_search(ws.optuna_uri, plan, space, warm_start_study=warm_start)
