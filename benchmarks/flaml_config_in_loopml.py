"""FLAML's best LightGBM configuration for a quality-benchmark table, put through loopml's
own pipeline (issue #11: is a loss to FLAML the search space or the selection?).

FLAML runs on the benchmark's 80% (as in automl_vs_flaml.py); when its best learner is
LightGBM, its configuration is scored by 5-fold cross-validation on the 80% and by the test
AUC of a refit on it, once in LightGBM as FLAML fits it (pandas categories) and once in
loopml's tabular pipeline (median imputation, each categorical encoding; loopml's space has no
`reg_alpha` or `max_bin`, so they are left at LightGBM's defaults there). A configuration
given as JSON with `--loopml-config` (a trial's parameters from loopml's study) is scored
the same way in loopml's pipeline, with `n_estimators` fixed as given.

Run: PYTHONPATH=$PWD:$PWD/.bench-packages .venv/bin/python benchmarks/flaml_config_in_loopml.py --table credit_data --budget 120
(binary tables only: the score is ROC AUC)
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks.automl_vs_flaml import SEED, TABLES, _categories, load_table, score, split

FOLDS = 5


def _cv_and_test(fit: Callable, x_train: pd.DataFrame, y_train: pd.Series, x_test: pd.DataFrame, y_test) -> str:
    """Mean 5-fold ROC AUC on the 80% and the test AUC of a refit on all of it."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(x_train, y_train)
    scores = [
        roc_auc_score(
            y_train.iloc[valid], fit(x_train.iloc[fold], y_train.iloc[fold]).predict_proba(x_train.iloc[valid])[:, 1]
        )
        for fold, valid in folds
    ]
    test = roc_auc_score(y_test, fit(x_train, y_train).predict_proba(x_test)[:, 1])
    return f"5-fold CV {np.mean(scores):.4f}, test {test:.4f}"


def main() -> None:
    import lightgbm
    from flaml import AutoML

    from automl_tasks.estimators.features import FeatureSchema, feature_frame
    from automl_tasks.estimators.tabular import make_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="credit_data")
    parser.add_argument("--budget", type=int, default=120)
    parser.add_argument("--loopml-config", help="a loopml configuration (JSON) to score beside it")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    table = next(t for t in TABLES if t.name == args.table)
    if table.task != "binary":
        parser.error(f"{table.name} is {table.task}; this script scores binary tables (ROC AUC)")
    x, y = load_table(table)
    x_train, x_test, y_train, y_test = split(x, y, table.task)
    automl = AutoML()
    automl.fit(
        _categories(x_train),
        y_train,
        task="classification",
        metric="roc_auc",
        time_budget=args.budget,
        n_jobs=2,
        seed=SEED,
        verbose=0,
    )
    flaml_test = score("binary", y_test.to_numpy(), automl.predict_proba(_categories(x_test)))
    print(f"FLAML ({args.budget} s): best {automl.best_estimator} {automl.best_config}")
    print(f"  its holdout AUC {1 - automl.best_loss:.4f}, its model's test AUC {flaml_test:.4f}")
    print(
        f"  best holdout AUC per learner: { {k: round(1 - v, 4) for k, v in automl.best_loss_per_estimator.items()} }"
    )
    if automl.best_estimator != "lgbm":
        print("FLAML's best is not LightGBM: nothing to put through loopml's pipeline")
        return
    config = dict(automl.best_config)
    max_bin = {"max_bin": (1 << config.pop("log_max_bin")) - 1} if "log_max_bin" in config else {}

    def flaml_lightgbm(x_fit, y_fit):
        return lightgbm.LGBMClassifier(**config, **max_bin, n_jobs=2, random_state=SEED, verbose=-1).fit(x_fit, y_fit)

    print(
        "FLAML's configuration in LightGBM as FLAML fits it:",
        _cv_and_test(flaml_lightgbm, _categories(x_train), y_train, _categories(x_test), y_test),
    )
    schema = FeatureSchema.infer(x_train)
    ours, ours_test = feature_frame(x_train, schema), feature_frame(x_test, schema)
    translated = {"model": "lightgbm", "imputation": "median", "scaling": "zscore"} | {
        f"model.lightgbm.{name}": config[name]
        for name in (
            "n_estimators",
            "learning_rate",
            "num_leaves",
            "min_child_samples",
            "colsample_bytree",
            "reg_lambda",
        )
    }

    def in_loopml(candidate: dict) -> Callable:
        return lambda x_fit, y_fit: make_pipeline(candidate, schema, "binary").fit(x_fit, y_fit.to_numpy())

    for encoding in ("native", "onehot"):
        candidate = translated | {"categorical_encoding": encoding}
        print(
            f"FLAML's configuration in loopml's pipeline ({encoding}):",
            _cv_and_test(in_loopml(candidate), ours, y_train, ours_test, y_test),
        )
    if args.loopml_config:
        candidate = json.loads(args.loopml_config)
        print("the given loopml configuration:", _cv_and_test(in_loopml(candidate), ours, y_train, ours_test, y_test))


if __name__ == "__main__":
    main()
