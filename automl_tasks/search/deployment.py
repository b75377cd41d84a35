"""The deployment goal inside the search (issue #12): latency on the target, budget, trade-off.

When a plan names a deployment target, each trial's fitted model is exported to ONNX,
compiled once on the target's engine (`deploy.compile_cache`: identical models are not
compiled twice) and its batch-1 latency measured. Then

- with a latency budget, a trial over it (or whose export or parity fails) is
  *infeasible*: it keeps its score and measured latency, and Optuna's constraint mechanism
  (`Trial.set_constraint`, Optuna 5's replacement of the samplers' `constraints_func`)
  marks it, so TPE, GP and NSGA-II steer away from it and `study.best_trial` /
  `study.best_trials` never return it;
- with "trade off latency", the study has two objectives (score, latency on the target)
  and the chosen point is the best score on the feasible Pareto front, i.e. the best score
  within the budget (or the best score when there is no budget).

`chosen_trial` is the one way the pipelines pick the trial to train and register.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl_tasks.core.errors import UserError
from automl_tasks.core.tags import (
    DEPLOY_ENGINE_TAG,
    DEPLOY_FEASIBLE_TAG,
    DEPLOY_TARGET_TAG,
    DEPLOY_VERDICT_ATTR,
    DEPLOY_VERDICT_TAG,
    INFEASIBLE_ATTR,
    TARGET_LATENCY_ATTR,
)
from automl_tasks.search.plan import SearchPlan

log = logging.getLogger(__name__)

#: the trial child run's metric with the measured latency on the target (p50, batch 1)
LATENCY_METRIC = "target_latency_ms"
#: Optuna constraint names (feasible when <= 0)
BUDGET_CONSTRAINT, DEPLOYABLE_CONSTRAINT = "latency_budget", "deployable"
#: rows of the dataset fed to the engine for the parity check and the latency runs
FEED_ROWS = 16


def directions(plan: SearchPlan) -> list[str]:
    """The study's directions: the metric's, plus latency (minimised) when trading it off."""
    return [plan.direction, "minimize"] if plan.trade_off_latency else [plan.direction]


@dataclass(frozen=True)
class TrialDeployment:
    """One trial's model on the plan's target: latency, verdict, and whether it may be chosen."""

    target: str
    engine: str
    latency_ms: float | None
    verdict: str
    deployable: bool
    reason: str = ""  # why the trial is infeasible ("" when feasible)
    cached: bool = False

    @property
    def feasible(self) -> bool:
        return not self.reason

    def metrics(self) -> dict[str, float]:
        return {LATENCY_METRIC: self.latency_ms} if self.latency_ms is not None else {}

    def tags(self) -> dict[str, str]:
        tags = {
            DEPLOY_TARGET_TAG: self.target,
            DEPLOY_ENGINE_TAG: self.engine,
            DEPLOY_VERDICT_TAG: self.verdict[:4900],
            DEPLOY_FEASIBLE_TAG: str(self.feasible).lower(),
        }
        if self.reason:
            tags[INFEASIBLE_ATTR] = self.reason[:4900]
        return tags


def measure_trial(ws: Any, plan: SearchPlan, estimator: Any, workdir: Path) -> TrialDeployment:
    """Export the trial's fitted model, compile it on the plan's target (cached), judge it.

    Never raises for the model's own trouble (an export the converter refuses, an engine
    that fails or disagrees): that makes the trial infeasible, with the reason."""
    import pandas as pd

    from automl_tasks.deploy.compile_cache import shared_cache

    target = _target(plan.deploy_target, str(ws.home))
    try:
        onnx_path = Path(estimator.export_onnx(workdir / "model.onnx"))
        feed = estimator.onnx_feed(pd.read_parquet(plan.data.path).head(FEED_ROWS))
    except Exception as exc:  # the converter's refusal is this model's verdict, not the search's crash
        reason = f"ONNX export failed: {type(exc).__name__}: {str(exc).strip()[:500]}"
        return TrialDeployment(target.name, target.engine, None, reason, False, reason)
    record = shared_cache(ws.runs / "compile_cache").evaluate(target, onnx_path, feed)
    reason = ""
    if not record.deployable:
        reason = f"not deployable on {target.name}: {record.verdict}"
    elif plan.latency_budget_ms > 0 and record.latency_ms is not None and record.latency_ms > plan.latency_budget_ms:
        reason = (
            f"latency {record.latency_ms:.4g} ms on {target.name} ({record.engine}) is over the "
            f"budget of {plan.latency_budget_ms:g} ms"
        )
    return TrialDeployment(
        target.name, record.engine, record.latency_ms, record.verdict, record.deployable, reason, record.cached
    )


@functools.lru_cache(maxsize=8)
def _target(name: str, home: str) -> Any:
    """The plan's target, read once per worker process (reading the targets loads every
    engine's entry point: 60 ms, more than a small model's whole measurement)."""
    from automl_tasks.deploy.targets import get_target

    return get_target(name, Path(home))


def record_on_trial(trial: Any, plan: SearchPlan, deployment: TrialDeployment) -> None:
    """User attributes and Optuna constraints of a live trial (before it is told its values)."""
    if deployment.latency_ms is not None:
        trial.set_user_attr(TARGET_LATENCY_ATTR, deployment.latency_ms)
    trial.set_user_attr(DEPLOY_VERDICT_ATTR, deployment.verdict[:1000])
    trial.set_user_attr(DEPLOY_ENGINE_TAG, deployment.engine)
    if deployment.reason:
        trial.set_user_attr(INFEASIBLE_ATTR, deployment.reason[:1000])
    trial.set_constraint(DEPLOYABLE_CONSTRAINT, 0.0 if deployment.deployable else 1.0)
    if plan.latency_budget_ms > 0:
        over = (deployment.latency_ms - plan.latency_budget_ms) if deployment.latency_ms is not None else 1.0
        trial.set_constraint(BUDGET_CONSTRAINT, over)


def objective_values(plan: SearchPlan, score: float, deployment: TrialDeployment | None) -> float | list[float]:
    """What the trial tells the study: its score, or (score, latency) when trading off."""
    if not plan.trade_off_latency:
        return score
    if deployment is None or deployment.latency_ms is None:
        raise ValueError(f"no latency on {plan.deploy_target} to trade off: {deployment and deployment.reason}")
    return [score, deployment.latency_ms]


def trial_score(trial: Any) -> float:
    """A completed trial's score (its first objective)."""
    return float(trial.values[0])


def feasible(trial: Any) -> bool:
    """Whether Optuna's constraints (if any were set) all hold for the trial."""
    return all(value <= 0.0 for value in trial.constraints.values())


def chosen_trial(study: Any, plan: SearchPlan | None = None) -> Any:
    """The trial to train and register: the best score among completed, feasible trials.

    Single objective: `study.best_trial` (Optuna skips infeasible trials itself). Trading
    off latency: the best score on the feasible Pareto front (`study.best_trials`), which is
    the best score within the budget. A clear `UserError` when nothing qualifies."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise UserError(f"study {study.study_name} has no completed trial; nothing to train (see worker logs)")
    candidates = study.best_trials if len(study.directions) > 1 else []
    if len(study.directions) == 1:
        try:
            candidates = [study.best_trial]
        except ValueError:
            candidates = []
    candidates = [t for t in candidates if feasible(t) and math.isfinite(trial_score(t))]
    if not candidates:
        over = [t for t in complete if t.user_attrs.get(INFEASIBLE_ATTR)]
        target = plan.deploy_target if plan is not None else "the deployment target"
        budget = (
            f" within the latency budget of {plan.latency_budget_ms:g} ms" if plan and plan.latency_budget_ms else ""
        )
        fastest = [t.user_attrs[TARGET_LATENCY_ATTR] for t in complete if TARGET_LATENCY_ATTR in t.user_attrs]
        hint = f"; the fastest measured trial took {min(fastest):.4g} ms" if fastest else ""
        raise UserError(
            f"no trial of study {study.study_name} is deployable on {target}{budget}: all {len(over)} completed "
            f"trials are infeasible{hint}. Raise the budget, choose another target, or search smaller models."
        )
    maximize = study.directions[0].name == "MAXIMIZE"
    return (max if maximize else min)(candidates, key=trial_score)


def best_so_far(study: Any) -> tuple[float | None, int | None]:
    """(best feasible score, its trial number) for progress lines; (None, None) before any."""
    try:
        best = chosen_trial(study)
    except (UserError, ValueError, RuntimeError):
        return None, None
    return trial_score(best), best.number


def pareto_rows(study: Any, plan: SearchPlan) -> list[dict[str, Any]]:
    """Every completed trial with its score, latency, feasibility and whether it is on the
    feasible Pareto front (score vs latency); the chosen trial is marked."""
    from optuna.trial import TrialState

    front = {t.number for t in study.best_trials} if len(study.directions) > 1 else set()
    try:
        chosen = chosen_trial(study, plan).number
    except UserError:
        chosen = None
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rows.append(
            {
                "trial": t.number,
                plan.metric: trial_score(t),
                LATENCY_METRIC: t.user_attrs.get(TARGET_LATENCY_ATTR),
                "feasible": feasible(t),
                "pareto": t.number in front,
                "chosen": t.number == chosen,
                "infeasible_reason": t.user_attrs.get(INFEASIBLE_ATTR, ""),
                **{f"param.{k}": v for k, v in t.params.items()},
            }
        )
    return rows
