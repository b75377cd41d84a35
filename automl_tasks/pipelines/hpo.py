"""The HPO pipeline (OmniForce Figure 3b): smoke test, default baseline, search, comparison.

Three studies share one dataset version and one split seed: `smoke` (two cheap random
trials: can the algorithm be searched at all?), `default` (the algorithm's default
hyperparameters, once) and `search` (the chosen strategy and budget). The comparison
re-evaluates the default and the best searched configuration on `repeats` split seeds
and says whether the search was worth it: the mean improvement must exceed twice its
standard error.
"""

from __future__ import annotations

import logging
import math
import statistics
from typing import Any

from automl_tasks.algorithms import resolve
from automl_tasks.core.errors import ConfigurationError, UserError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    ALGORITHM_TAG,
    ERROR_TAG,
    KIND_TAG,
    ORIGIN_TAG,
    SEARCH_WORTH_IT_TAG,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.estimators import DataSpec, estimator_class
from automl_tasks.estimators.metrics import Metric
from automl_tasks.pipelines.intake import PreprocessResult, preprocess
from automl_tasks.pipelines.nocode import deployment_goal, log_deployment_goal
from automl_tasks.pipelines.requests import HpoRequest
from automl_tasks.search import SearchPlan, choose_strategy, choose_trial_budget, open_study, start_search
from automl_tasks.search.deployment import chosen_trial, trial_score
from automl_tasks.search.plan import build_plan
from automl_tasks.search.strategies import GRID_POINTS
from automl_tasks.search_space import load_search_space

log = logging.getLogger(__name__)

BRANCHES = ("smoke", "default", "search")
SMOKE_TRIALS = 2


def prepare_hpo(ws: Workspace, request: HpoRequest, *, dag_run_id: str) -> PreprocessResult:
    """Ingest, validate and version the dataset; check the algorithm fits the task."""
    spec = request.spec()
    pre = preprocess(ws, request.nocode(), dag_run_id=dag_run_id)
    if pre.task_type not in spec.task_types:
        raise ConfigurationError(
            f"algorithm {spec.name} handles {list(spec.task_types)} tasks; {request.dataset} is {pre.task_type}"
        )
    client = mlflow_client(ws)
    client.set_tag(pre.parent_run_id, KIND_TAG, "hpo_pipeline")
    client.set_tag(pre.parent_run_id, ALGORITHM_TAG, f"{spec.name} {spec.version}")
    return pre


def plan_branch(ws: Workspace, request: HpoRequest, pre: PreprocessResult, branch: str, study_name: str) -> int:
    """Create the branch's study; return how many workers it gets."""
    spec = resolve(None, request.algorithm)
    space_yaml = request.space_yaml()
    space = load_search_space(space_yaml)
    metric = Metric(pre.metric)
    fidelity = spec.fidelity is not None
    epochs = request.max_epochs or None
    goal: dict[str, Any] = {}  # the deployment goal applies to the search branch alone
    if branch == "smoke":
        strategy, why, n_trials, workers = "random", "smoke test", SMOKE_TRIALS, 1
        epochs = min(2, epochs or 2) if fidelity else None
    elif branch == "default":
        strategy, why, n_trials, workers = "random", "default configuration only", 1, 1
    else:
        profile = pre.profile()
        n_trials = choose_trial_budget(request.n_trials, profile)
        strategy, why = choose_strategy(
            request.strategy, space, n_trials, profile, fidelity=fidelity, trade_off=request.trade_off_latency
        )
        goal = deployment_goal(request)
        log_deployment_goal(mlflow_client(ws), pre.parent_run_id, request)
        if strategy == "grid" and request.n_trials == 0:
            n_trials = len(space.grid(GRID_POINTS))
            why += f"; budget = the grid's {n_trials} points"
        workers = request.n_workers
    plan = build_plan(
        study_name,
        pre,
        metric=metric.name,
        space=space,
        space_yaml=space_yaml,
        n_trials=n_trials,
        n_workers=workers,
        time_budget_s=request.time_budget_s,
        seed=request.seed,
        strategy=strategy,
        algorithm=spec.estimator,
        run_epochs=epochs if fidelity else None,
        trust_report=request.trust_report,
        resources=spec.resources.to_dict(),
        **goal,
    )
    if branch == "search":
        start_search(ws.optuna_uri, plan, space)
    else:
        from automl_tasks.search.storage import create_study

        study = create_study(ws.optuna_uri, plan)
        if not study.trials and branch == "default":
            # a private request's default is the private space's (the algorithm's defaults lack the epsilon)
            config = space.default_config() if request.dp_epsilon else spec.default_config()
            study.enqueue_trial(config, user_attrs={ORIGIN_TAG: "default"})
    log.info(
        "%s branch: study %s, strategy %s (%s), %d trials, %d workers",
        branch,
        study_name,
        strategy,
        why,
        n_trials,
        workers,
    )
    return workers


def smoke_verdict(ws: Workspace, study_name: str, algorithm: str) -> dict[str, Any]:
    """Stop the run with the smoke trials' errors unless one completed with a finite score."""
    from optuna.trial import TrialState

    study, _ = open_study(ws, study_name)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and math.isfinite(t.value)]
    if not done:
        errors = sorted({t.user_attrs.get(ERROR_TAG, t.state.name) for t in study.trials})
        raise UserError(
            f"smoke test: algorithm {algorithm!r} is not searchable on this data; no smoke trial completed. "
            f"Errors: {errors[:5]}"
        )
    return {"smoke_trials": len(done), "smoke_best": max(t.value for t in done)}


def _score(spec_estimator: str, plan: SearchPlan, config: dict[str, Any], split_seed: int) -> float:
    cls = estimator_class(spec_estimator)
    data = DataSpec(plan.data.path, plan.data.target, plan.data.task_type, split_seed=split_seed)
    estimator = cls(
        run_epochs=plan.run_epochs, data=data, is_trainer=False, model_args=config, metric=Metric(plan.metric)
    )
    return estimator.run().score


def compare(ws: Workspace, request: HpoRequest, pre: PreprocessResult, studies: dict[str, str]) -> dict[str, Any]:
    """Search vs default: both configurations re-scored on `repeats` split seeds; worth it or not."""
    default_study, _ = open_study(ws, studies["default"])
    search_study, plan = open_study(ws, studies["search"])
    try:
        default_trial = default_study.best_trial
    except ValueError:
        raise UserError("the default branch has no completed trial; nothing to compare") from None
    best = chosen_trial(search_study, plan)  # feasible on the deployment target, within its latency budget
    metric = Metric(plan.metric)
    seeds = [request.seed + k for k in range(request.repeats)]
    gains = []
    for seed in seeds:
        searched = _score(plan.algorithm, plan, best.params, seed)
        default = _score(plan.algorithm, plan, default_trial.params, seed)
        gains.append(metric.gain(searched, default))
        log.info("advisor: split seed %d: search %.5g vs default %.5g", seed, searched, default)
    mean = statistics.fmean(gains)
    se = statistics.stdev(gains) / math.sqrt(len(gains))
    worth = mean > 2 * se and mean > 0
    verdict = {
        "metric": metric.name,
        "default_score": default_trial.value,
        "search_best_score": trial_score(best),
        "search_best_trial": best.number,
        "improvement_mean": mean,
        "improvement_se": se,
        "repeats": len(seeds),
        "search_trials": len(search_study.trials),
        "worth_it": worth,
        "verdict": (
            f"the search improved {metric.name} by {mean:.4g} ± {se:.2g} (se over {len(seeds)} split seeds): "
            + ("worth it" if worth else "not clearly better than the default hyperparameters")
        ),
    }
    client = mlflow_client(ws)
    for key in ("default_score", "search_best_score", "improvement_mean", "improvement_se"):
        client.log_metric(pre.parent_run_id, key, float(verdict[key]))
    client.set_tag(pre.parent_run_id, SEARCH_WORTH_IT_TAG, str(worth).lower())
    client.log_dict(pre.parent_run_id, verdict, "advisor/search_vs_default.json")
    log.info("advisor: %s", verdict["verdict"])
    return verdict


def search_started(ws: Workspace, study_name: str) -> bool:
    """Whether the branch's study exists (its plan task ran)."""
    import optuna

    from automl_tasks.search.storage import open_storage

    return any(s.study_name == study_name for s in optuna.get_all_study_summaries(open_storage(ws.optuna_uri)))


def study_names(base: str) -> dict[str, str]:
    return {branch: f"{base}-{branch}" for branch in BRANCHES}


def register_best(ws: Workspace, study_name: str, *, dag_run_id: str, dataset_version: str) -> dict[str, Any]:
    """Final-train the search's best configuration and register it in the family.

    Both go through the task estimator's steps (automl_tasks.pipelines.registration), so
    every version carries the same lineage tags. Tabular models get the refit check, ONNX
    parity, latency, evaluation data and the promotion gate. Other algorithms must be
    registered as deployable; their ONNX model becomes a version of the family as
    `challenger` (the promotion gate and the BentoML service read tabular models only, so
    they are not promoted automatically).
    """
    from automl_tasks.pipelines.registration import train_and_register

    _, plan = open_study(ws, study_name)
    # the plan holds a resolved module:Class reference; train_and_register refuses an
    # algorithm not registered as deployable and promotes only tabular models itself
    return train_and_register(
        ws,
        study_name,
        dag_run_id=dag_run_id,
        dataset_version=dataset_version,
        pipeline="hpo_pipeline",
        estimator_cls=estimator_class(plan.algorithm),
    ).to_dict()
