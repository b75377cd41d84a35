"""Run an exported pipeline with ONNX Runtime, check its parity with the native model, measure it.

Parity is judged on what the user consumes (issue #18, #11):
- classification: the labels, decoded to the user's type, agree on every row (a row
  whose two best native probabilities are closer than the tolerance is a tie and may
  go either way), and every probability is within the tolerance;
- regression: every prediction is within the tolerance; there is no "label agreement".
The tolerance is relative to the output's scale and to float32 resolution:
`max(PARITY_RTOL * scale, PARITY_ULPS * float32 spacing of the native value)`, where
scale is 1 for probabilities and the largest |native prediction| for regression (an
absolute 1e-4 is below float32 resolution for targets in the hundreds of thousands).
A model that fails here is not lost: `automl_tasks.deploy.runtime` registers it with the
native runtime and records why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import ExportError
from automl_tasks.deploy.measure import latency_stats
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.estimators.onnx.conversion import onnx_inputs

PARITY_RTOL = 1e-4
PARITY_ULPS = 64
BATCH_ROWS = 32  #: the batch size latency is reported for, as for every engine


class OnnxModel:
    """An exported pipeline with loopml's output conventions, run by ONNX Runtime or, when
    `engine` names another deployment engine, by that engine's build of the same file."""

    def __init__(
        self, path: str | Path, schema: FeatureSchema, engine: str = "onnxruntime", options: Any = None
    ) -> None:
        from automl_tasks.deploy.backends.ort import session

        self.session = session(str(path), threads=1)
        inputs = {i.name for i in self.session.get_inputs()}
        # what the file is fed: its graph computes the feature pipeline's frequencies and
        # interactions, unless it was exported before they moved into the graph
        self.schema = schema if inputs >= set(schema.model_numeric) else schema.graph_fed
        self.output_names = [o.name for o in self.session.get_outputs()]
        numeric = [i for i in self.session.get_inputs() if i.name in set(schema.model_numeric)]
        self.numeric_dtype = np.float32 if numeric and numeric[0].type == "tensor(float)" else np.float64
        self.engine = engine
        self._run = lambda feeds: self.session.run(None, feeds)
        if engine != "onnxruntime":
            from automl_tasks.deploy.backends import get_backend

            runner = get_backend(engine).compile(path, self._example_feed(), options)
            self._run = runner.run

    def _example_feed(self) -> dict[str, np.ndarray]:
        """One row (missing values) fixing the input names, dtypes and ranks for an engine's build."""
        row = pd.DataFrame(
            {c: [np.nan] for c in self.schema.input_numeric} | {c: [None] for c in self.schema.input_categorical}
        )
        return onnx_inputs(feature_frame(row, self.schema), self.schema, self.numeric_dtype)

    def run(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions, class probabilities or None for regression)."""
        return self.run_feeds(onnx_inputs(features, self.schema, self.numeric_dtype))

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """`run` on ready ONNX inputs (one [N, 1] array per model column), no frame."""
        outputs = self._run(feeds)
        if len(outputs) == 2:
            return np.asarray(outputs[0]).ravel(), np.asarray(outputs[1])
        return np.asarray(outputs[0]).ravel(), None


@dataclass(frozen=True)
class Parity:
    """How closely ONNX Runtime reproduces the native model on the same rows."""

    max_abs_diff: float
    tolerance: float  # the largest per-row tolerance used
    share_within_tolerance: float
    label_agreement: float | None  # None for regression

    @property
    def ok(self) -> bool:
        return self.share_within_tolerance == 1.0 and self.label_agreement in (None, 1.0)

    def as_metrics(self) -> dict[str, float]:
        metrics = {
            "onnx_parity_max_abs_diff": self.max_abs_diff,
            "onnx_parity_tolerance": self.tolerance,
            "onnx_parity_share_within_tol": self.share_within_tolerance,
        }
        if self.label_agreement is not None:
            metrics["onnx_parity_label_agreement"] = self.label_agreement
        return metrics


def parity_tolerance(native: np.ndarray, scale: float) -> np.ndarray:
    """Per-value tolerance: relative to the output's scale, never below float32 resolution."""
    resolution = np.spacing(np.abs(np.asarray(native, dtype=np.float32))).astype(np.float64)
    return np.maximum(PARITY_RTOL * scale, PARITY_ULPS * resolution)


def check_parity(pipeline: Any, onnx_model: OnnxModel, features: pd.DataFrame, labels: Any = None) -> Parity:
    """Compare native and ONNX outputs; raise `ExportError` outside the tolerance.

    `labels` (an `automl_tasks.core.labels.LabelSpec`) decodes both sides' labels to the
    user's type before they are compared; without it they are compared as they are."""
    onnx_labels, proba = onnx_model.run(features)
    native_labels = pipeline.predict(features)
    if proba is not None:
        native_proba = pipeline.predict_proba(features)
        tolerance = parity_tolerance(native_proba, 1.0)
        diff = np.abs(np.asarray(proba, dtype=np.float64) - native_proba)
        within = (diff <= tolerance).all(axis=1)
        decode = labels.decode if labels is not None else np.asarray
        same = decode(onnx_labels) == decode(native_labels)
        top2 = np.sort(native_proba, axis=1)[:, -2:] if native_proba.shape[1] > 1 else None
        tie = (top2[:, 1] - top2[:, 0] <= tolerance.max()) if top2 is not None else np.zeros(len(same), bool)
        parity = Parity(float(diff.max()), float(tolerance.max()), float(within.mean()), float((same | tie).mean()))
    else:
        native = np.asarray(native_labels, dtype=np.float64)
        scale = float(np.abs(native).max()) if len(native) else 1.0
        tolerance = parity_tolerance(native, scale or 1.0)
        diff = np.abs(np.asarray(onnx_labels, dtype=np.float64) - native)
        within = diff <= tolerance
        parity = Parity(float(diff.max()), float(tolerance.max()), float(within.mean()), None)
    if not parity.ok:
        agreement = "" if parity.label_agreement is None else f"; labels agree on {parity.label_agreement:.2%}"
        raise ExportError(
            f"ONNX and native predictions disagree: {parity.share_within_tolerance:.2%} of rows within the "
            f"tolerance (max difference {parity.max_abs_diff:.3g}, tolerance {parity.tolerance:.3g}){agreement}; "
            "need every row"
        )
    return parity


def measure_latency(model: Any, features: pd.DataFrame, *, repeats: int = 50) -> dict[str, float]:
    """p50/p99 latency (ms) of `model.run` on 1 row and on a batch of `BATCH_ROWS`, after warm-up.

    `model` is an `OnnxModel` or the native fallback (anything with `run(frame)`); the
    timing is `automl_tasks.deploy.measure`'s, shared with the engines and benchmarks."""
    single = features.iloc[:1]
    batch = features.iloc[np.arange(BATCH_ROWS) % len(features)]  # rows repeated up to BATCH_ROWS
    one = latency_stats(lambda: model.run(single), 1, warmup=5, repeats=repeats)
    many = latency_stats(lambda: model.run(batch), BATCH_ROWS, warmup=2, repeats=max(5, repeats // 5))
    return {
        "latency_single_ms": one.p50_ms,
        "latency_single_p99_ms": one.p99_ms,
        "latency_batch_ms": many.p50_ms,
        "latency_batch_p99_ms": many.p99_ms,
        "batch_rows": float(BATCH_ROWS),
        "throughput_rows_per_s": BATCH_ROWS / (many.p50_ms / 1000) if many.p50_ms > 0 else float("inf"),
    }
