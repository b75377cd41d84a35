"""Small tabular models fitted in-process: loopml's own estimator and export, on a table with
numbers, missing values and a categorical column (for engine and lowering tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from automl_tasks.estimators import DataSpec
from automl_tasks.estimators.metrics import Metric
from automl_tasks.estimators.tabular import TabularEstimator


def fitted_estimator(path, task: str, model_args: dict) -> TabularEstimator:
    """loopml's tabular estimator trained as a search trial on the Parquet table at `path`."""
    metric = Metric("r2" if task == "regression" else "accuracy")
    data = DataSpec(str(path), "target", task)
    estimator = TabularEstimator(run_epochs=None, data=data, is_trainer=False, model_args=model_args, metric=metric)
    estimator.run()
    return estimator


def small_table(task: str, rows: int = 240) -> pd.DataFrame:
    """`rows` rows of x1, x2 (some missing), colour (some missing) and a `target` that
    depends on all three: three classes ("multiclass") or a number ("regression")."""
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], rows).astype(object)
    colour[::17] = None  # missing categories reach the encoder as the "missing" category
    x1, x2 = rng.normal(size=rows), rng.normal(3, 2, rows)
    x2[::13] = np.nan
    signal = x1 + np.nan_to_num(x2) / 2 + (colour == "red") * 1.5
    target = signal * 10 + rng.normal(size=rows) if task == "regression" else np.digitize(signal, [0.5, 2.0])
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "target": target})
