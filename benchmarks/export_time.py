"""Time of the ONNX export of large tree models (issue #11: wall time after the search).

A NoCode run on hpc_data (4 classes) spent 71 s exporting its ensemble: a multiclass
LightGBM grows one tree per class per round, so 1,000 rounds are 4,000 trees. This times
`pipeline_to_onnx` (conversion, float64 thresholds, output types) on LightGBM models of
growing size, a depth-16 random forest and unlimited-depth extra trees (an ensemble member
hmda's runs chose: its export took 7 s, twice in a run), on a 3,000-row table of 8 numeric
columns.

Run: PYTHONPATH=. .venv/bin/python benchmarks/export_time.py
(run it from two checkouts to compare them on one machine)
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.estimators.onnx.conversion import pipeline_to_onnx
from automl_tasks.estimators.tabular import make_pipeline

N_ROWS, N_COLUMNS, N_CLASSES = 3000, 8, 4
#: (model, rounds or trees, forest depth: 0 = unlimited)
CASES = (
    ("lightgbm", 250, None),
    ("lightgbm", 1000, None),
    ("random_forest", 150, 16),
    ("extra_trees", 150, 0),
)


def main() -> None:
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    x_raw = pd.DataFrame(rng.normal(size=(N_ROWS, N_COLUMNS)), columns=[f"x{i}" for i in range(N_COLUMNS)])
    y = (x_raw.x0 * 2 + x_raw.x1 + rng.normal(size=N_ROWS)).pipe(pd.qcut, N_CLASSES, labels=False).to_numpy()
    schema = FeatureSchema.infer(x_raw)
    x = feature_frame(x_raw, schema)
    print(f"| model | rounds or trees | depth | trees in the graph | export s | graph MB |  ({N_CLASSES} classes)")
    print("|---|---|---|---|---|---|")
    for model, size, depth in CASES:
        config = {"model": model, f"model.{model}.n_estimators": size}
        if model == "lightgbm":  # a slow learner never stops early: every round is kept
            config.update({"model.lightgbm.learning_rate": 0.01, "model.lightgbm.num_leaves": 31})
        else:
            config[f"model.{model}.max_depth"] = depth
        pipeline = make_pipeline(config, schema, "multiclass").fit(x, y)
        started = time.perf_counter()
        onx = pipeline_to_onnx(pipeline, schema)
        seconds = time.perf_counter() - started
        trees = size * N_CLASSES if model == "lightgbm" else size
        megabytes = len(onx.SerializeToString()) / 1e6
        shown_depth = "-" if depth is None else depth or "unlimited"
        print(f"| {model} | {size} | {shown_depth} | {trees} | {seconds:.1f} | {megabytes:.1f} |")


if __name__ == "__main__":
    main()
