"""Export a fitted tabular pipeline to ONNX, run it with ONNX Runtime and check parity.

Parity tolerance (stated, checked on the test split): classification probabilities
within 1e-4 absolute and labels equal on at least 99% of rows; regression predictions
within 1e-4 * (1 + |y|) on at least 99% of rows. Float32 evaluation of tree thresholds
makes a rare row near a split threshold differ, hence the 99% share.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.errors import ExportError
from automl_tasks.estimators.features import FeatureSchema

PARITY_ATOL = 1e-4
PARITY_MIN_SHARE = 0.99
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def export_pipeline(pipeline: Any, schema: FeatureSchema, path: Path) -> Path:
    """Convert a fitted scikit-learn pipeline to `path` (one ONNX input per column)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    from automl_tasks.export.converters import register_converters

    register_converters()
    inputs = [(c, FloatTensorType([None, 1])) for c in schema.model_numeric]
    inputs += [(c, StringTensorType([None, 1])) for c in schema.model_categorical]
    model = pipeline.steps[-1][1]
    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    try:
        onx = convert_sklearn(pipeline, initial_types=inputs, options=options, target_opset=TARGET_OPSET)
    except Exception as exc:
        raise ExportError(f"ONNX conversion of {type(model).__name__} failed: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path


def onnx_inputs(features: pd.DataFrame, schema: FeatureSchema) -> dict[str, np.ndarray]:
    """Feature frame (see `feature_frame`) -> the ONNX input dict (one [N, 1] array per column)."""
    feeds = {c: features[c].to_numpy(dtype=np.float32).reshape(-1, 1) for c in schema.model_numeric}
    feeds.update({c: features[c].to_numpy(dtype=object).astype(str).reshape(-1, 1) for c in schema.model_categorical})
    return feeds


class OnnxModel:
    """An ONNX Runtime session over an exported pipeline, with loopml's output conventions."""

    def __init__(self, path: str | Path, schema: FeatureSchema) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.schema = schema
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions, class probabilities or None for regression)."""
        return self.run_feeds(onnx_inputs(features, self.schema))

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """`run` on ready ONNX inputs (one [N, 1] array per model column), no frame."""
        outputs = self.session.run(None, feeds)
        if len(outputs) == 2:
            return np.asarray(outputs[0]).ravel(), np.asarray(outputs[1])
        return np.asarray(outputs[0]).ravel(), None


@dataclass(frozen=True)
class Parity:
    """How closely ONNX Runtime reproduces the native model on the same rows."""

    max_abs_diff: float
    share_within_tolerance: float
    label_agreement: float

    @property
    def ok(self) -> bool:
        return self.share_within_tolerance >= PARITY_MIN_SHARE and self.label_agreement >= PARITY_MIN_SHARE

    def as_metrics(self) -> dict[str, float]:
        return {
            "onnx_parity_max_abs_diff": self.max_abs_diff,
            "onnx_parity_share_within_tol": self.share_within_tolerance,
            "onnx_parity_label_agreement": self.label_agreement,
        }


def check_parity(pipeline: Any, onnx_model: OnnxModel, features: pd.DataFrame) -> Parity:
    """Compare native and ONNX predictions; raise `ExportError` outside the tolerance."""
    labels, proba = onnx_model.run(features)
    native_labels = pipeline.predict(features)
    if proba is not None:
        diff = np.abs(proba - pipeline.predict_proba(features)).max(axis=1)
        within = diff <= PARITY_ATOL
        agreement = float(np.mean(labels == native_labels))
    else:
        diff = np.abs(labels - native_labels)
        within = diff <= PARITY_ATOL * (1 + np.abs(native_labels))
        agreement = float(np.mean(within))
    parity = Parity(float(diff.max()), float(within.mean()), agreement)
    if not parity.ok:
        raise ExportError(
            f"ONNX and native predictions disagree: {parity.share_within_tolerance:.1%} of rows within "
            f"{PARITY_ATOL}, labels agree on {parity.label_agreement:.1%} (need {PARITY_MIN_SHARE:.0%})"
        )
    return parity


def measure_latency(onnx_model: OnnxModel, features: pd.DataFrame, *, repeats: int = 50) -> dict[str, float]:
    """Median single-row and batch latency (ms) and batch rows/s with ONNX Runtime."""
    single = features.iloc[:1]
    for _ in range(5):
        onnx_model.run(single)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        onnx_model.run(single)
        times.append(time.perf_counter() - started)
    batch_times = []
    for _ in range(max(3, repeats // 10)):
        started = time.perf_counter()
        onnx_model.run(features)
        batch_times.append(time.perf_counter() - started)
    batch = float(np.median(batch_times))
    return {
        "latency_single_ms": float(np.median(times) * 1000),
        "latency_batch_ms": batch * 1000,
        "batch_rows": float(len(features)),
        "throughput_rows_per_s": len(features) / batch if batch > 0 else float("inf"),
    }
