"""Ensemble selection (Caruana et al., 2004), the method behind auto-sklearn's and AutoGluon's
ensembles: greedily add, with replacement, the candidate whose addition most improves the
averaged prediction's score on held-out rows; a candidate's weight is how often it was added.

Scores are taken on the search's own scoring rows (each fold's held-out rows, or the
validation split), as the mean over folds of the metric, the same number a search trial
reports, so the ensemble and the best single trial are judged alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from automl_tasks.estimators.metrics import Metric
from automl_tasks.estimators.row_scorer import fold_score, row_scorer
from automl_tasks.estimators.weighted_ensemble import average

#: greedy rounds: the most members (with repetition) an ensemble can hold
ROUNDS = 25


@dataclass(frozen=True)
class Selection:
    """The chosen weights (candidate index -> share, summing to 1) and the scores."""

    weights: dict[int, float]
    score: float  # the ensemble's mean fold score
    best_single: float  # the best candidate's own mean fold score

    @property
    def members(self) -> list[int]:
        return sorted(self.weights)


def mean_score(
    metric: Metric,
    truths: Sequence[np.ndarray],
    folds: Sequence[Sequence[np.ndarray]],
    weights: Sequence[float],
    classes: np.ndarray | None,
) -> float:
    """The mean over folds of the weighted average's score; `folds[m][f]`: member m, fold f."""
    return float(
        np.mean(
            [
                fold_score(metric, truth, average([member[f] for member in folds], weights), classes)
                for f, truth in enumerate(truths)
            ]
        )
    )


def greedy_weights(
    metric: Metric,
    truths: Sequence[np.ndarray],
    candidates: Sequence[Sequence[np.ndarray]],
    classes: np.ndarray | None = None,
    *,
    rounds: int = ROUNDS,
    scorer: Callable[[Metric, np.ndarray, np.ndarray | None], Callable[[np.ndarray], float]] = row_scorer,
) -> Selection:
    """Caruana's greedy selection with replacement over `candidates[c][f]` (candidate c's
    prediction on fold f's scoring rows, whose truth is `truths[f]`).

    The ensemble kept is the best one met over the rounds (ties: the earlier, smaller one),
    so it never scores below the best single candidate on these rows. `scorer(metric, truth,
    classes)` makes a fold's score function (numpy's by default: ~1,300 scores a selection;
    benchmarks/ensemble_selection_time.py passes scikit-learn's to compare)."""
    if not candidates:
        raise ValueError("ensemble selection needs at least one candidate")
    scorers = [scorer(metric, truth, classes) for truth in truths]

    def mean_over_folds(predictions: Sequence[np.ndarray]) -> float:
        return float(np.mean([score(p) for score, p in zip(scorers, predictions, strict=True)]))

    singles = [mean_over_folds(c) for c in candidates]
    best_single = max(singles, key=lambda s: metric.gain(s, 0.0))
    counts = np.zeros(len(candidates), dtype=int)
    sums = [np.zeros_like(np.asarray(p, dtype=np.float64)) for p in candidates[0]]
    best_counts, best_score = None, None
    for _ in range(rounds):
        k = int(counts.sum())
        scores = []
        for candidate in candidates:
            scores.append(mean_over_folds([(s + p) / (k + 1) for s, p in zip(sums, candidate, strict=True)]))
        chosen = max(range(len(candidates)), key=lambda c: (metric.gain(scores[c], 0.0), -c))
        counts[chosen] += 1
        sums = [s + np.asarray(p, dtype=np.float64) for s, p in zip(sums, candidates[chosen], strict=True)]
        if best_score is None or metric.gain(scores[chosen], best_score) > 0:
            best_counts, best_score = counts.copy(), scores[chosen]
    weights = {int(c): float(best_counts[c] / best_counts.sum()) for c in np.flatnonzero(best_counts)}
    return Selection(weights, float(best_score), float(best_single))
