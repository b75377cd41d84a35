"""ONNX/native parity of the forests with and without float64 split thresholds (issue #11 item 1).

A 3,000-row table with values on coarse grids (many rows exactly on split points), forests
of 100 trees of depth 16, each scaling of the default space. For each case: the largest
probability (or relative regression) difference between ONNX Runtime and scikit-learn,
the share of rows beyond 1e-4 (classification) or 1e-6 relative (regression), and the
label agreement. `double` = `automl_tasks.estimators.onnx.conversion.DOUBLE_TREES`.

Run: PYTHONPATH=. .venv/bin/python benchmarks/export_parity.py
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import automl_tasks.estimators.onnx.conversion as onnx_export
from automl_tasks.deploy.onnx_model import OnnxModel
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.estimators.tabular import make_pipeline

N = 3000


def _table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": np.round(rng.normal(size=N), 2),
            "b": rng.integers(0, 50, N).astype(float) * 0.1,
            "c": rng.choice(list("xyz"), N),
            "d": np.round(rng.normal(size=N) * 1e5 + 3e5, 2),
            "e": rng.lognormal(size=N),
        }
    )


def main() -> None:
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(1)
    x_raw = _table()
    targets = {
        "binary": ((x_raw.a + x_raw.b * 0.3 + rng.normal(size=N) + x_raw.d / 1e5) > 3.5).astype(int).to_numpy(),
        "multiclass": rng.integers(0, 3, N),
        "regression": (x_raw.a * 1e6 + x_raw.b * 3e5 + x_raw.d + rng.normal(size=N) * 1e5).to_numpy(),
    }
    schema = FeatureSchema.infer(x_raw)
    x = feature_frame(x_raw, schema)
    print("| task | model | scaling | double | max diff | rows beyond | labels agree |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for task, y in targets.items():
            for model in ("random_forest", "extra_trees"):
                for scaling in ("zscore", "minmax", "log"):
                    config = {"model": model, "scaling": scaling, f"model.{model}.n_estimators": 100}
                    config[f"model.{model}.max_depth"] = 16
                    pipeline = make_pipeline(config, schema, task).fit(x, y)
                    for double in (False, True):
                        onnx_export.DOUBLE_TREES = double
                        path = onnx_export.export_pipeline(pipeline, schema, Path(folder) / "m.onnx")
                        labels, proba = OnnxModel(path, schema).run(x)
                        if proba is not None:
                            diff = np.abs(proba - pipeline.predict_proba(x)).max(axis=1)
                            beyond, agree = (diff > 1e-4).mean(), f"{(labels == pipeline.predict(x)).mean():.4f}"
                        else:
                            native = pipeline.predict(x)
                            diff = np.abs(labels - native) / np.abs(native).max()
                            beyond, agree = (diff > 1e-6).mean(), "-"
                        print(
                            f"| {task} | {model} | {scaling} | {double} | {diff.max():.2g} | {beyond:.4f} | {agree} |"
                        )
    onnx_export.DOUBLE_TREES = True


if __name__ == "__main__":
    main()
