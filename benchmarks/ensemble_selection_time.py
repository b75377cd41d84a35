"""How long ensemble selection takes after a search, scoring with numpy (estimators/row_scorer)
against scoring with scikit-learn's metrics, and whether both choose the same ensemble.

The shape of a real selection: `--candidates` trials' predictions over `--folds` folds of
`--rows` scoring rows each (the defaults: credit_data's 3,563 search rows in 5 folds and the
10 candidates `pipelines/ensembling.CANDIDATES` allows), for a binary table (ROC AUC), a
multiclass one (accuracy and ROC AUC) and a regression (R²). The candidates are noisy
copies of the truth, seeded.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/ensemble_selection_time.py [--rows 713]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from automl_tasks.estimators.ensemble_selection import greedy_weights
from automl_tasks.estimators.metrics import Metric
from automl_tasks.estimators.row_scorer import fold_score


def sklearn_scorer(metric: Metric, truth: np.ndarray, classes: np.ndarray | None):
    """The scoring before row_scorer: every score through `Metric.__call__`."""
    return lambda prediction: fold_score(metric, truth, prediction, classes)


def _candidates(task: str, rows: int, folds: int, candidates: int, rng: np.random.Generator):
    if task == "regression":
        truths = [rng.normal(size=rows) for _ in range(folds)]
        return truths, [[t + rng.normal(0, 1, rows) for t in truths] for _ in range(candidates)], None
    n_classes = 2 if task == "binary" else 4
    truths = [rng.integers(0, n_classes, rows) for _ in range(folds)]

    def noisy(truth: np.ndarray) -> np.ndarray:
        logits = np.eye(n_classes)[truth] * 1.5 + rng.normal(0, 1, (rows, n_classes))
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    return truths, [[noisy(t) for t in truths] for _ in range(candidates)], np.arange(n_classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=713)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=10)
    args = parser.parse_args()
    print(f"{args.candidates} candidates, {args.folds} folds of {args.rows} rows:")
    print("| task | metric | scikit-learn s | numpy s | speed-up | same ensemble and score |")
    print("|---|---|---|---|---|---|")
    for task, metric in (
        ("binary", "roc_auc"),
        ("multiclass", "accuracy"),
        ("multiclass", "roc_auc"),
        ("regression", "r2"),
    ):
        truths, candidates, classes = _candidates(
            task, args.rows, args.folds, args.candidates, np.random.default_rng(0)
        )
        seconds, selections = [], []
        for scorer in (sklearn_scorer, None):
            started = time.perf_counter()
            kwargs = {"scorer": scorer} if scorer else {}
            selections.append(greedy_weights(Metric(metric), truths, candidates, classes, **kwargs))
            seconds.append(time.perf_counter() - started)
        old, new = selections
        same = old.weights == new.weights and abs(old.score - new.score) < 1e-12
        print(f"| {task} | {metric} | {seconds[0]:.2f} | {seconds[1]:.3f} | {seconds[0] / seconds[1]:.0f}x | {same} |")


if __name__ == "__main__":
    main()
