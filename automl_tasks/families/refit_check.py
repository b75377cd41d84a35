"""Refit integrity: is the final model as good as the configuration the search validated?

The task estimator refits the best trial's configuration on train+validation and scores
it on the held-out test split. That test score should agree with the trial's validated
score up to sampling noise. `judge_refit` is the pure rule: the shortfall (how much
worse the test score is than the validated one) must stay within `CHECK_Z` standard
errors of the difference of the two scores. The test score's standard error is
bootstrapped from the test rows; the validated score is a score of the same kind on the
validation rows, so its standard error is taken as the test one scaled by
sqrt(n_test / n_valid).

When the refit falls outside, `fit_final_model` falls back to the trial's own validated
model: the configuration fitted again exactly as the trial was (train rows, the trial's
seed), accepted only if it reproduces the trial's recorded validation score, then scored
and checked on the test split in turn. Re-fitting the trial deterministically instead of
storing every trial's model keeps the workers free of artifact uploads; the
reproduction check is what makes it the trial's model. If the fallback fails too, the
better of the two is registered with status `failed`, which the promotion gate refuses.

A refit that passes is fitted once more on every row, test split included
(`refit_on_all_rows`), and that model is the one registered and served: the test score,
the family evaluation score and the promotion gate describe the checked model, the
served one has a quarter more rows behind it. A guard keeps the checked model when the
all-rows fit scores worse on the test rows it has now seen (a broken fit, not noise).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from automl_tasks.core.tags import FIT_ROWS_TAG, REFIT_CHECK_MODEL_TAG, REFIT_CHECK_REASON_TAG, REFIT_CHECK_TAG
from automl_tasks.estimators.metrics import Metric
from automl_tasks.estimators.row_scorer import row_scorer

log = logging.getLogger(__name__)

#: standard errors of the validated-minus-test difference a refit may fall short by; 3, not
#: 2, because the best trial's validated score is the maximum of many and so optimistic
CHECK_Z = 3.0
#: bootstrap resamples of the test rows for the test score's standard error and interval
BOOTSTRAP_SAMPLES = 300
#: a shortfall this small (share of |validated score|) always passes (e.g. a zero-variance test set)
MIN_ALLOWED_SHARE = 0.01
#: a re-created trial model must reproduce the recorded validation score within 1e-4 * (1 + |score|)
REPRODUCE_TOL = 1e-4

PASSED, FALLBACK, FAILED = "passed", "fallback", "failed"
REFIT, TRIAL_MODEL = "refit", "trial_model"


@dataclass(frozen=True)
class RefitCheck:
    """The numbers of one check: a model's test score against the validated score."""

    metric: str
    validated_score: float
    test_score: float
    test_low: float  # 95% bootstrap percentile interval of the test score
    test_high: float
    shortfall: float  # how much worse the test score is (positive = worse), in the metric's units
    allowed: float  # the largest shortfall sampling noise explains
    passed: bool

    def describe(self) -> str:
        verdict = "within" if self.passed else "OUTSIDE"
        return (
            f"validated {self.metric} {self.validated_score:.4g}, test {self.test_score:.4g} "
            f"(95% bootstrap interval [{self.test_low:.4g}, {self.test_high:.4g}]): shortfall "
            f"{self.shortfall:.3g} is {verdict} the allowed {self.allowed:.3g}"
        )

    def metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_validated": self.validated_score,
            f"{prefix}_test": self.test_score,
            f"{prefix}_test_low": self.test_low,
            f"{prefix}_test_high": self.test_high,
            f"{prefix}_shortfall": self.shortfall,
            f"{prefix}_allowed": self.allowed,
        }


def bootstrap_scores(
    metric: Metric, truth: np.ndarray, prediction: np.ndarray, classes: Any = None, *, samples: int, seed: int = 0
) -> np.ndarray:
    """The metric on `samples` resamples (with replacement) of the scored rows; resamples
    on which the metric is undefined (e.g. one class only for ROC AUC) are skipped."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    # numpy's metric where the prediction has the form row_scorer reads (probabilities for a
    # ranking metric, values): scikit-learn's checks of each input took 0.57 s of 300 ROC AUCs
    numpy_form = metric.needs_proba or classes is None
    out = []
    for _ in range(samples):
        rows = rng.integers(0, n, n)
        try:
            if numpy_form:
                value = row_scorer(metric, truth[rows], classes)(prediction[rows])
            else:
                value = metric(truth[rows], prediction[rows], classes)
        except ValueError:
            continue
        if math.isfinite(value):
            out.append(value)
    return np.asarray(out, dtype=float)


def judge_refit(
    metric: Metric, validated: float, test: float, boot: np.ndarray, *, n_test: int, n_valid: int
) -> RefitCheck:
    """The pure rule: does `test` agree with `validated` up to the splits' sampling noise?"""
    se_test = float(np.std(boot, ddof=1)) if len(boot) > 1 else 0.0
    se_diff = se_test * math.sqrt(1.0 + n_test / max(n_valid, 1))
    allowed = max(CHECK_Z * se_diff, MIN_ALLOWED_SHARE * abs(validated))
    shortfall = metric.gain(validated, test)
    low, high = (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))) if len(boot) else (test, test)
    return RefitCheck(
        metric.name, float(validated), float(test), low, high, float(shortfall), allowed, shortfall <= allowed
    )


def check_model(estimator: Any, validated: float, *, seed: int = 0) -> RefitCheck:
    """Score a fitted tabular estimator on its test rows and judge it against `validated`."""
    rows = estimator.splits_.test
    features, truth = estimator.features_.iloc[rows], np.asarray(estimator.target_[rows])
    classes = getattr(estimator.pipeline_, "classes_", None)
    prediction = np.asarray(estimator.predict_for_metric(features))
    test = estimator.metric(truth, prediction, classes)
    boot = bootstrap_scores(estimator.metric, truth, prediction, classes, samples=BOOTSTRAP_SAMPLES, seed=seed)
    # the validated score may be a cross-validated mean over more rows than the validation split
    n_valid = getattr(estimator, "validated_rows", len(estimator.splits_.valid))
    return judge_refit(estimator.metric, validated, test, boot, n_test=len(rows), n_valid=n_valid)


@dataclass
class FinalModel:
    """The model to register, where it came from and the checks that chose it."""

    estimator: Any  # a fitted TabularEstimator
    test_score: float
    source: str  # REFIT | TRIAL_MODEL
    status: str  # PASSED | FALLBACK | FAILED
    reason: str
    refit_check: RefitCheck
    fallback_check: RefitCheck | None = None
    #: the model `test_score` was measured on, when the registered one is its all-rows refit
    checked: Any = None

    @property
    def scored(self) -> Any:
        """The model the test score belongs to: scores on held-out rows are computed with it."""
        return self.checked if self.checked is not None else self.estimator

    @property
    def promotable(self) -> bool:
        return self.status != FAILED

    def tags(self) -> dict[str, str]:
        return {
            REFIT_CHECK_TAG: self.status,
            REFIT_CHECK_MODEL_TAG: self.source,
            REFIT_CHECK_REASON_TAG: self.reason[:4900],
            FIT_ROWS_TAG: self.estimator.fit_rows_,
        }

    def metrics(self) -> dict[str, float]:
        out = self.refit_check.metrics("refit_check")
        if self.fallback_check is not None:
            out |= self.fallback_check.metrics("fallback_check")
        return out


def fit_final_model(
    estimator_cls: type,
    *,
    data: Any,
    config: dict[str, Any],
    validated: float,
    metric: Metric,
    workdir: Path,
    all_rows: bool = True,
) -> FinalModel:
    """Refit `config` on train+validation, check it, fall back to the trial's model if needed.

    Returns a `FinalModel`; see the module docstring for the rule. With `all_rows=False` a
    refit that passes is returned as checked, for the caller's own `on_all_rows`."""
    refit = estimator_cls(
        run_epochs=None, data=data, is_trainer=True, model_args=config, metric=metric, output_dir=workdir
    )
    refit.run()
    check = check_model(refit, validated, seed=data.split_seed)
    if check.passed:
        log.info("refit integrity check passed: %s", check.describe())
        passed = FinalModel(refit, check.test_score, REFIT, PASSED, f"refit {check.describe()}", check)
        return on_all_rows(passed) if all_rows else passed
    log.warning("refit integrity check FAILED: %s; falling back to the trial's own model", check.describe())
    trial = estimator_cls(run_epochs=None, data=data, is_trainer=False, model_args=config, metric=metric)
    trial.train()
    reproduced = trial.calculate_score().score
    if abs(reproduced - validated) > REPRODUCE_TOL * (1 + abs(validated)):
        reason = (
            f"refit {check.describe()}; the trial's model could not be re-created (validation "
            f"{metric.name} {reproduced:.6g}, the trial recorded {validated:.6g}): no fallback"
        )
        log.warning("%s", reason)
        return FinalModel(refit, check.test_score, REFIT, FAILED, reason, check)
    fallback = check_model(trial, validated, seed=data.split_seed)
    if fallback.passed:
        reason = f"refit {check.describe()}; registered the trial's own validated model instead: {fallback.describe()}"
        log.warning("%s", reason)
        return FinalModel(trial, fallback.test_score, TRIAL_MODEL, FALLBACK, reason, check, fallback)
    keep_trial = metric.gain(fallback.test_score, check.test_score) > 0
    reason = (
        f"refit {check.describe()}; the trial's own model fails too: {fallback.describe()}; "
        f"registered the {'trial model' if keep_trial else 'refit'} (better on test), not promotable"
    )
    log.warning("%s", reason)
    if keep_trial:
        return FinalModel(trial, fallback.test_score, TRIAL_MODEL, FAILED, reason, check, fallback)
    return FinalModel(refit, check.test_score, REFIT, FAILED, reason, check, fallback)


def refits_on_all_rows(final: FinalModel) -> bool:
    """Whether `on_all_rows` would refit `final`: a refit that passed, not yet refitted."""
    return final.status == PASSED and final.checked is None


def on_all_rows(final: FinalModel) -> FinalModel:
    """`final` with its model refitted on every row as the registered one, the checked model
    kept as `checked`; `final` itself when the all-rows fit scores worse on the test rows,
    which it has seen, than the checked model did unseen by more than the check allows, or
    cannot be scored there at all (NaN)."""
    full = final.estimator.refit_on_all_rows()
    check = final.refit_check
    try:
        seen = full.score_on_test()
    except ValueError as exc:  # e.g. NaN predictions, which the metric refuses
        log.warning("the refit on all rows cannot be scored: %s", exc)
        seen = math.nan
    if not math.isfinite(seen) or full.metric.gain(check.test_score, seen) > check.allowed:
        reason = (
            f"{final.reason}; the refit on all rows scored {check.metric} {seen:.4g} on the test rows it was "
            f"fitted on, worse than the checked model's {check.test_score:.4g} unseen: registered the checked model"
        )
        log.warning("%s", reason)
        return replace(final, reason=reason)
    log.info("registered the refit on all %d rows (test rows seen: %s %.4g)", len(full.target_), check.metric, seen)
    return replace(final, estimator=full, checked=final.estimator)
