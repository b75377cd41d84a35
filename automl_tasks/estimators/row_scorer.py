"""A metric of many predictions of the same rows, in numpy: what ensemble selection needs.

Ensemble selection scores about 1,300 averaged predictions after every search (10
candidates x 25 greedy rounds x 5 folds). scikit-learn's metrics spend about 2.5 ms of
input validation on each, whatever the rows, so selection took 2-6 s of the task
estimator; the same numbers in numpy take a few hundredths of that. Each scorer equals
`Metric.__call__` (scikit-learn) on the rows it was made for (tests/unit/test_ensemble.py
compares them); metrics and rows it has no numpy form for (log loss, macro F1, a fold with
one class, constant targets) are scored by scikit-learn as before.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from automl_tasks.estimators.metrics import Metric


def fold_score(metric: Metric, truth: np.ndarray, prediction: np.ndarray, classes: np.ndarray | None) -> float:
    """The metric of an averaged prediction, by scikit-learn: probabilities (classification;
    label metrics score their most likely class) or values."""
    if classes is not None and not metric.needs_proba:
        return metric(truth, classes[np.argmax(prediction, axis=1)], classes)
    return metric(truth, prediction, classes)


def row_scorer(metric: Metric, truth: np.ndarray, classes: np.ndarray | None) -> Callable[[np.ndarray], float]:
    """`score(prediction)`: the metric of `prediction` (class probabilities in `classes`'
    order, or regression values) against `truth`, as `fold_score` gives."""
    truth = np.asarray(truth)

    def by_sklearn(prediction: np.ndarray) -> float:
        return fold_score(metric, truth, prediction, classes)

    if metric.name == "roc_auc" and classes is not None:
        return _roc_auc(truth, classes) or by_sklearn
    if metric.name == "accuracy" and classes is not None:
        return lambda prediction: float(np.mean(classes[np.argmax(prediction, axis=1)] == truth))
    if metric.name in ("r2", "rmse", "mae") and classes is None:
        return _regression(metric.name, truth.astype(np.float64)) or by_sklearn
    return by_sklearn


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """The area under the ROC curve as the Mann-Whitney statistic of average ranks (ties
    count a half), which is the trapezoids scikit-learn sums."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _roc_auc(truth: np.ndarray, classes: np.ndarray) -> Callable[[np.ndarray], float] | None:
    """Binary: the AUC of the greater label's column; multiclass: the mean one-vs-rest AUC
    over the `classes` these rows hold (scikit-learn's 'ovr' macro, `Metric`'s rule for a
    class fitted on but absent here). None when fewer than two classes are present (scikit-
    learn's error or rules then apply)."""
    present = np.unique(truth)
    if len(classes) == 2:
        if len(present) != 2:
            return None
        positive = truth == present[1]  # as scikit-learn: the greater label, scored by column 1
        return lambda prediction: _auc(positive, np.asarray(prediction)[:, 1])
    positives = [(i, truth == c) for i, c in enumerate(classes) if c in present]
    if len(positives) < 2:
        return None
    return lambda prediction: float(np.mean([_auc(p, np.asarray(prediction)[:, i]) for i, p in positives]))


def _regression(name: str, truth: np.ndarray) -> Callable[[np.ndarray], float] | None:
    if name == "mae":
        return lambda prediction: float(np.mean(np.abs(truth - np.asarray(prediction, dtype=np.float64))))
    if name == "rmse":
        return lambda prediction: float(np.sqrt(np.mean((truth - np.asarray(prediction, dtype=np.float64)) ** 2)))
    total = float(np.sum((truth - truth.mean()) ** 2))
    if total == 0.0:  # scikit-learn's own rule for a constant target
        return None
    return lambda prediction: 1.0 - float(np.sum((truth - np.asarray(prediction, dtype=np.float64)) ** 2)) / total
