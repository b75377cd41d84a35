"""Choose the runtime a new version is served with: its target's engine, ONNX Runtime, or the native model.

A finished search is never lost to an export detail (issues #18, #11): if the pipeline
cannot be converted, the ONNX file cannot be loaded, or ONNX Runtime disagrees with the
native model beyond the parity tolerance, the version is registered with the native
(scikit-learn) runtime. The reason goes on the version (`EXPORT_FALLBACK_TAG`), the
advisor repeats it, and the service and batch inference read `RUNTIME_TAG` to load
the native model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.tags import EXPORT_FALLBACK_TAG, RUNTIME_TAG
from automl_tasks.deploy.onnx_model import OnnxModel, Parity, check_parity, measure_latency
from automl_tasks.deploy.targets import DeploymentTarget
from automl_tasks.estimators.features import FeatureSchema
from automl_tasks.estimators.onnx.conversion import export_pipeline

log = logging.getLogger(__name__)

ONNX_RUNTIME, NATIVE_RUNTIME = "onnxruntime", "native"


class NativeModel:
    """The fitted pipeline behind the same `run(features) -> (labels, proba | None)` as `OnnxModel`."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.classifies = hasattr(pipeline, "predict_proba") and hasattr(pipeline, "classes_")

    def run(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        if self.classifies:
            proba = self.pipeline.predict_proba(features)
            return np.asarray(self.pipeline.classes_)[proba.argmax(axis=1)], proba
        return np.asarray(self.pipeline.predict(features)), None


@dataclass
class Deployment:
    """The runtime chosen for a version, with its parity and latency measurements."""

    runtime: str
    onnx_path: Path | None
    parity: Parity | None
    latency: dict[str, float]
    fallback_reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    #: the deployment target's measurement (latency, size, parity; MLflow model metrics)
    #: and its tags (target, engine, verdict); empty until `on_target`
    target_metrics: dict[str, float] = field(default_factory=dict)
    target_tags: dict[str, str] = field(default_factory=dict)
    #: seconds the ONNX conversion took (0 when there was none): what another export of a
    #: model like this one would cost (the trust report's attack weighs it)
    export_s: float = 0.0

    def tags(self) -> dict[str, str]:
        tags = {RUNTIME_TAG: self.runtime, **self.target_tags}
        if self.fallback_reason:
            tags[EXPORT_FALLBACK_TAG] = self.fallback_reason[:4900]
        return tags


def export_or_fallback(
    pipeline: Any, schema: FeatureSchema, workdir: Path, check_features: pd.DataFrame, labels: Any = None
) -> Deployment:
    """Export to ONNX, load it and check parity on `check_features`; fall back to native on any failure.

    `labels` is the version's `LabelSpec` (parity compares labels in the user's type)."""
    try:
        started = time.perf_counter()
        onnx_path = export_pipeline(pipeline, schema, workdir / "model.onnx")
        export_s = time.perf_counter() - started
        onnx_model = OnnxModel(onnx_path, schema)
        parity = check_parity(pipeline, onnx_model, check_features, labels)
    except Exception as exc:  # conversion, ONNX Runtime load and parity failures all end here
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("ONNX export not used; the version will be served by the native model: %s", reason)
        latency = measure_latency(NativeModel(pipeline), check_features)
        return Deployment(NATIVE_RUNTIME, None, None, latency, reason, {**latency, "onnx_export_ok": 0.0})
    latency = measure_latency(onnx_model, check_features)
    metrics = {**parity.as_metrics(), **latency, "onnx_export_ok": 1.0, "onnx_size_kb": onnx_path.stat().st_size / 1024}
    log.info("ONNX parity %s; latency %s", parity.as_metrics(), latency)
    return Deployment(ONNX_RUNTIME, onnx_path, parity, latency, "", metrics, export_s=export_s)


def on_target(deployment: Deployment, target: DeploymentTarget, feed: dict[str, np.ndarray]) -> Deployment:
    """The version on its deployment target: compiled on the target's engine, checked against
    ONNX Runtime on `feed`, measured at batch 1 and 32 (`deploy.targets.evaluate_on_target`).

    When the build is deployable the version is served on that engine (its runtime is the
    engine's name); otherwise it stays on ONNX Runtime and the verdict, recorded either way,
    says why. A version served natively has no ONNX model to compile and is returned as it is."""
    if deployment.onnx_path is None:
        return deployment
    from automl_tasks.deploy.targets import evaluate_on_target, target_metrics

    result = evaluate_on_target(target, deployment.onnx_path, feed)
    metrics, tags = target_metrics(target, result)
    runtime = result.verdict.engine if result.verdict.deployable else deployment.runtime
    if not result.verdict.deployable:
        log.warning("target %s: %s; the version is served by %s", target.name, result.verdict, runtime)
    else:
        log.info("target %s: %s; %s", target.name, result.verdict, metrics)
    return replace(deployment, runtime=runtime, target_metrics=metrics, target_tags=tags)
