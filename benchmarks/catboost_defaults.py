"""Would CatBoost pay as a learner of loopml's default space? (issue #11 item 4: "XGBoost
and CatBoost as search-space branches, if the benchmark shows a gain".)

On each quality-benchmark table's 80% training split (benchmarks/automl_vs_flaml.py, seed
0), 5-fold cross-validation of CatBoost's and LightGBM's default configurations, both with
the number of trees found by early stopping on the fold's held-out rows (as loopml's search
finds LightGBM's), one thread each (as a search worker fits), categorical columns as each
library takes them natively. Prints each table's mean fold score (ROC AUC, or R²), trees and
fit seconds per fold: what a first CatBoost trial would bring and cost, before any tuning.
CatBoost runs twice: on its own categorical handling (ordered target statistics over the
text of each category), and on category codes as plain numbers, which is what loopml's
preprocessing would give it (its ONNX export takes numbers only).
This is evidence for building the branch, not a comparison of tuned systems.

    make bench-deps
    PYTHONPATH=$PWD:$PWD/.bench-packages .venv/bin/python benchmarks/catboost_defaults.py [--tables wage concrete]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from benchmarks.automl_vs_flaml import SEED, TABLES, _categories, load_table, score, split

FOLDS = 5
#: most trees, and rounds without improvement before early stopping ends a fit
MAX_TREES, PATIENCE = 3000, 50
#: tables above this many rows are left out (single-threaded CatBoost fits take minutes there)
MAX_ROWS = 10_000


def _fold_scores(learner: str, table, x: pd.DataFrame, y: pd.Series, folds) -> tuple[float, float, float]:
    """(mean fold score, mean trees, mean fit seconds) of `learner`'s defaults."""
    import catboost
    import lightgbm

    regress = table.task == "regression"
    categorical = [c for c in x.columns if isinstance(x[c].dtype, pd.CategoricalDtype)]
    if learner == "catboost":  # CatBoost takes categories as text columns
        x = x.assign(**{c: x[c].astype(str) for c in categorical})
    elif learner == "catboost_codes":
        x, categorical = x.assign(**{c: x[c].cat.codes for c in categorical}), []
    scores, trees, seconds = [], [], []
    for fit, held_out in folds:
        started = time.time()
        if learner.startswith("catboost"):
            cls = catboost.CatBoostRegressor if regress else catboost.CatBoostClassifier
            model = cls(
                iterations=MAX_TREES, thread_count=1, verbose=0, random_seed=SEED, cat_features=categorical,
                early_stopping_rounds=PATIENCE, allow_writing_files=False,
            )  # fmt: skip
            model.fit(x.iloc[fit], y.iloc[fit], eval_set=(x.iloc[held_out], y.iloc[held_out]))
            trees.append(model.get_best_iteration() + 1)
        else:
            cls = lightgbm.LGBMRegressor if regress else lightgbm.LGBMClassifier
            model = cls(n_estimators=MAX_TREES, n_jobs=1, verbose=-1, random_state=SEED)
            model.fit(
                x.iloc[fit], y.iloc[fit], eval_set=[(x.iloc[held_out], y.iloc[held_out])],
                callbacks=[lightgbm.early_stopping(PATIENCE, verbose=False)],
            )  # fmt: skip
            trees.append(model.best_iteration_)
        seconds.append(time.time() - started)
        predicted = model.predict(x.iloc[held_out]) if regress else model.predict_proba(x.iloc[held_out])
        scores.append(score(table.task, y.iloc[held_out].to_numpy(), predicted))
    return float(np.mean(scores)), float(np.mean(trees)), float(np.mean(seconds))


def _cell(result: tuple[float, float, float]) -> str:
    return f"{result[0]:.4f} ({result[1]:.0f} trees, {result[2]:.1f} s a fold)"


def main() -> None:
    from sklearn.model_selection import KFold, StratifiedKFold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", help="table keys (default: every table up to MAX_ROWS rows)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    gains = []
    for table in TABLES:
        if args.tables and table.key not in args.tables:
            continue
        x, y = load_table(table)
        if not args.tables and len(x) > MAX_ROWS:
            print(f"{table.key}: left out ({len(x)} rows > {MAX_ROWS})", flush=True)
            continue
        x_train, _, y_train, _ = split(x, y, table.task, SEED)
        x_train, y_train = _categories(x_train).reset_index(drop=True), y_train.reset_index(drop=True)
        splitter = KFold if table.task == "regression" else StratifiedKFold
        folds = list(splitter(FOLDS, shuffle=True, random_state=SEED).split(x_train, y_train))
        lgbm = _fold_scores("lightgbm", table, x_train, y_train, folds)
        cat = _fold_scores("catboost", table, x_train, y_train, folds)
        codes = _fold_scores("catboost_codes", table, x_train, y_train, folds)
        gains.append((cat[0] - lgbm[0], codes[0] - lgbm[0]))
        print(
            f"{table.key} ({table.task}, {len(x_train)} rows): LightGBM {_cell(lgbm)}; CatBoost {_cell(cat)}: "
            f"{gains[-1][0]:+.4f}; CatBoost on codes {_cell(codes)}: {gains[-1][1]:+.4f}",
            flush=True,
        )
    for i, name in enumerate(("CatBoost's", "CatBoost's on codes")):
        column = [g[i] for g in gains]
        print(
            f"{name} defaults minus LightGBM's, mean over {len(column)} tables {np.mean(column):+.4f}; "
            f"better on {sum(g > 0 for g in column)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
