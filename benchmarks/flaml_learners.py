"""Would an XGBoost branch pay in loopml's space? (issue #11, item 4: "if the benchmark shows a gain")

FLAML's own search, restricted to one learner at a time, on the quality benchmark's tables
and split (automl_vs_flaml.py): LightGBM, XGBoost (leaf-wise, `max_leaves`) and depth-limited
XGBoost (`xgb_limitdepth`). Each test score is printed with its difference from the LightGBM
run and that difference's paired-bootstrap standard error over the test rows. A learner
that beats LightGBM in the same search machinery on many tables, beyond the noise, is worth
a branch; one that does not, is not worth its export code and its place in the lock.

Run: PYTHONPATH=$PWD:$PWD/.bench-packages .venv/bin/python benchmarks/flaml_learners.py --budget 60
"""

from __future__ import annotations

import argparse
import time
import warnings

from benchmarks.automl_vs_flaml import SEED, TABLES, _categories, load_table, paired_standard_error, score, split

LEARNERS = ("lgbm", "xgboost", "xgb_limitdepth")


def _flaml(table, learner: str, x_train, y_train, x_test, budget: int):
    from flaml import AutoML

    metric = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "r2"}[table.task]
    automl = AutoML()
    automl.fit(
        _categories(x_train),
        y_train,
        task="regression" if table.task == "regression" else "classification",
        metric=metric,
        time_budget=budget,
        estimator_list=[learner],
        n_jobs=2,
        seed=SEED,
        verbose=0,
    )
    test = _categories(x_test)
    return automl.predict(test) if table.task == "regression" else automl.predict_proba(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--tables", nargs="*", help="table names (default: all)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    better = dict.fromkeys(LEARNERS[1:], 0)
    beyond = dict.fromkeys(LEARNERS[1:], 0)
    tables = [t for t in TABLES if not args.tables or t.key in args.tables]
    for table in tables:
        x, y = load_table(table)
        x_train, x_test, y_train, y_test = split(x, y, table.task)
        truth = y_test.to_numpy()
        started = time.time()
        predictions = {learner: _flaml(table, learner, x_train, y_train, x_test, args.budget) for learner in LEARNERS}
        scores = {learner: score(table.task, truth, p) for learner, p in predictions.items()}
        cells = [f"lgbm {scores['lgbm']:.4f}"]
        for learner in LEARNERS[1:]:
            diff = scores[learner] - scores["lgbm"]
            se = paired_standard_error(table.task, truth, predictions[learner], predictions["lgbm"])
            better[learner] += diff > 0
            beyond[learner] += diff > 2 * se
            cells.append(f"{learner} {scores[learner]:.4f} ({diff:+.4f} ± {se:.4f})")
        print(f"{table.key:14s} " + " | ".join(cells) + f"  [{time.time() - started:.0f} s]", flush=True)
    for learner in LEARNERS[1:]:
        print(
            f"{learner} above LightGBM on {better[learner]} of {len(tables)} tables "
            f"({beyond[learner]} beyond 2 SE), {args.budget} s each, FLAML's search"
        )


if __name__ == "__main__":
    main()
