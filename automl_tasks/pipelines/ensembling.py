"""Whether the version to register is the best trial or an ensemble of the best trials.

After the search, ensemble selection (estimators/ensemble_selection) runs over the saved
fold predictions (search/predictions) of the `CANDIDATES` best completed trials and of the
best trial of each model family not among them. Why the families: the best ten trials of a
search that favoured one family are often all of that family, and an ensemble gains most
from a model that errs differently (on attrition, one search's top ten held its best linear
model and its ensemble scored 0.837 on unseen rows; the next search's best linear model
came 14th, its ensemble was all LightGBM and scored 0.807). Selection adds a member only
where it raises the score on the search's scoring rows, as for any candidate. The
ensemble replaces the best single trial when it has at least two members and scores
better on the search's scoring rows by `MIN_GAIN_SHARE` of the score: every extra member
costs serving latency, so a gain inside rounding is not worth one. A share of 0.01% was
measured and reverted: the ensembles it let in scored +0.0003 on unseen rows on average
(better on 6 of 8 searches) but cost the task estimator 20 s instead of 6 on wa_churn and
57 s instead of 8 on diamonds (a 112 MB graph of deep forests), docs/BENCHMARKS.md.

No ensemble is built when the request switched it off (`ensemble: false`), for a plan
with a deployment target (a latency budget or trade-off was measured per trial, for one
model) or for an estimator other than the built-in tabular one (the members are built as
that estimator).

`benchmarks/ensemble_vs_best_trial.py` measures what the rule buys on unseen rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from automl_tasks.core.settings import Workspace
from automl_tasks.estimators.ensemble import ensemble_config
from automl_tasks.estimators.ensemble_selection import Selection, greedy_weights
from automl_tasks.estimators.metrics import Metric
from automl_tasks.search.plan import SearchPlan
from automl_tasks.search.predictions import FoldPredictions, load_fold_predictions

log = logging.getLogger(__name__)

#: best completed trials (distinct configurations) that may become members
CANDIDATES = 10
#: least improvement over the best trial (share of |its score|) for which an ensemble is built
MIN_GAIN_SHARE = 1e-3


@dataclass(frozen=True)
class EnsembleChoice:
    """The members (trials, heaviest first; the best trial is always one: greedy selection
    picks it first) and weights of the chosen ensemble, and its scores."""

    trials: list[Any]  # optuna FrozenTrials
    weights: list[float]
    score: float  # the ensemble's score on the search's scoring rows
    best_single: float
    fold_best_iterations: list[list[int] | None]  # per member, as its trial found them
    candidates: int  # how many trials selection could draw from

    @property
    def config(self) -> dict[str, Any]:
        """The `EnsembleEstimator` configuration."""
        return ensemble_config([t.params for t in self.trials], self.weights, self.fold_best_iterations)

    def describe(self) -> str:
        return ", ".join(f"trial {t.number}: {w:.3g}" for t, w in zip(self.trials, self.weights, strict=True))


def _family_of(plan: SearchPlan) -> Callable[[dict[str, Any]], tuple]:
    """A configuration's model family (`search.budget.family_of`: the values of the space's
    branch parameters, the tabular `model`)."""
    from automl_tasks.search.budget import family_of, plan_branch_params

    names = plan_branch_params(plan)
    return lambda params: family_of(params, names)


def _candidates(
    ws: Workspace, study: Any, plan: SearchPlan, metric: Metric, *, family_best: bool = True
) -> list[tuple[Any, FoldPredictions]]:
    """The `CANDIDATES` best completed trials with saved predictions aligned with the best
    one's, best first, one per configuration, and with `family_best` the best trial of every
    other model family too (see the module docstring)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trials = sorted(trials, key=lambda t: (-metric.gain(float(t.values[0]), 0.0), t.number))
    family = _family_of(plan)
    out: list[tuple[Any, FoldPredictions]] = []
    seen: list[dict] = []
    families: set[tuple] = set()
    for trial in trials:
        top = len(out) < CANDIDATES
        if trial.params in seen or not (top or (family_best and family(trial.params) not in families)):
            continue
        saved = load_fold_predictions(ws, plan.study_name, trial.number, parent_run_id=plan.parent_run_id)
        if saved is None or (out and not saved.aligned_with(out[0][1])):
            continue
        seen.append(trial.params)
        families.add(family(trial.params))
        out.append((trial, saved))
    return out


def select_ensemble(ws: Workspace, study: Any, plan: SearchPlan, *, family_best: bool = True) -> EnsembleChoice | None:
    """Ensemble selection over the best trials' saved predictions, before any rule on whether
    to use it; None with fewer than two candidates. `family_best`: see `_candidates`."""
    metric = Metric(plan.metric)
    candidates = _candidates(ws, study, plan, metric, family_best=family_best)
    if len(candidates) < 2:
        log.info("no ensemble: %d trial(s) with saved predictions", len(candidates))
        return None
    import pandas as pd

    target = pd.read_parquet(plan.data.path, columns=[plan.data.target])[plan.data.target].to_numpy()
    first = candidates[0][1]
    truths = [target[rows] for rows in first.rows]
    selection: Selection = greedy_weights(metric, truths, [saved.predictions for _, saved in candidates], first.classes)
    members = sorted(selection.members, key=lambda c: -selection.weights[c])
    return EnsembleChoice(
        [candidates[c][0] for c in members],
        [selection.weights[c] for c in members],
        selection.score,
        selection.best_single,
        [candidates[c][1].best_iterations for c in members],
        len(candidates),
    )


def worth_it(choice: EnsembleChoice, metric: Metric) -> bool:
    """The rule: two or more members, and a gain over `MIN_GAIN_SHARE` of the score."""
    gain = metric.gain(choice.score, choice.best_single)
    return len(choice.trials) >= 2 and gain > MIN_GAIN_SHARE * abs(choice.best_single)


def choose_ensemble(ws: Workspace, study: Any, plan: SearchPlan, *, tabular: bool) -> EnsembleChoice | None:
    """The ensemble to register instead of the best trial, or None (with the reason logged)."""
    if not tabular:
        return None
    if not plan.ensemble:
        log.info("no ensemble: switched off in the request")
        return None
    if plan.deploy_target:
        log.info("no ensemble: trials were measured one model at a time on %s", plan.deploy_target)
        return None
    choice = select_ensemble(ws, study, plan)
    if choice is None:
        return None
    metric = Metric(plan.metric)
    verdict = (
        f"ensemble of {len(choice.trials)} of {choice.candidates} candidates (the best trials and each model "
        f"family's best) scores {metric.name} "
        f"{choice.score:.5g} on the search's scoring rows against the best trial's {choice.best_single:.5g}"
    )
    if not worth_it(choice, metric):
        log.info("no ensemble: %s (needs 2+ members and a gain over %.2g of the score)", verdict, MIN_GAIN_SHARE)
        return None
    log.info("registering an ensemble: %s; members %s", verdict, choice.describe())
    return choice
