"""The registration smoke test: which of four capabilities an algorithm really has.

searchable        the space parses and a tiny search completes with finite scores
batch_inference   a trained model predicts a dataset in batches of the declared size
deployable        the model exports to ONNX and ONNX Runtime answers a request like the native model
edge_optimisable  the ONNX model runs on ONNX Runtime, and every other deployment engine
                  (`automl_tasks.deploy.backends`: OpenVINO, TVM, TensorRT, installed ones)
                  is listed as ok, parity failed, failed (with the error) or unavailable
                  (with its reason); an engine that answers differently fails it

Each capability is tried for real on the algorithm's smoke dataset; a failure is kept
with its reason. Capabilities build on each other: an algorithm that is not searchable
is not tried further, one that only searches can be searched but not deployed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl_tasks.algorithms.spec import AlgorithmSpec
from automl_tasks.core.tags import ERROR_TAG

log = logging.getLogger(__name__)

CAPABILITIES = ("searchable", "batch_inference", "deployable", "edge_optimisable")
SMOKE_TRIALS = 3
SMOKE_EPOCHS = 2  # fidelity used for algorithms that declare one


@dataclass(frozen=True)
class Capability:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass(frozen=True)
class CapabilityReport:
    """What registration found; stored in the workspace and in MLflow."""

    algorithm: str
    version: str
    source: str
    capabilities: list[Capability]
    at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def has(self, capability: str) -> bool:
        return any(c.name == capability and c.ok for c in self.capabilities)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapabilityReport:
        return cls(**{**data, "capabilities": [Capability(**c) for c in data["capabilities"]]})

    def summary(self) -> str:
        marks = ", ".join(f"{c.name} {'yes' if c.ok else 'NO'}" for c in self.capabilities)
        return f"{self.algorithm} {self.version}: {marks}"


def _timed(name: str, check: Callable[[], str]) -> Capability:
    started = time.perf_counter()
    try:
        detail, ok = check(), True
    except Exception as exc:  # the reason is the product here
        detail, ok = f"{type(exc).__name__}: {exc}"[:2000], False
    log.info("smoke test %s: %s (%s)", name, "ok" if ok else "FAILED", detail[:300])
    return Capability(name, ok, detail, round(time.perf_counter() - started, 2))


def _skipped(name: str, because: str) -> Capability:
    return Capability(name, False, f"not tried: {because}", 0.0)


def smoke_test(spec: AlgorithmSpec, workdir: Path) -> CapabilityReport:
    """Try the four capabilities on the spec's smoke dataset; never raises for the algorithm's faults."""
    from automl_tasks.data import bundled_frame
    from automl_tasks.estimators import DataSpec, estimator_class
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.search.engine import optimize
    from automl_tasks.search.strategies import make_strategy

    workdir.mkdir(parents=True, exist_ok=True)
    smoke = spec.smoke_test
    frame = bundled_frame(smoke["dataset"])
    data_path = workdir / "smoke.parquet"
    frame.to_parquet(data_path)
    data = DataSpec(str(data_path), smoke["target"], smoke["task_type"])
    metric = Metric(smoke["metric"])
    epochs = SMOKE_EPOCHS if spec.fidelity else None
    state: dict[str, Any] = {}

    def searchable() -> str:
        cls = estimator_class(spec.estimator)
        space = spec.space()

        def objective(config, report):
            return cls(run_epochs=epochs, data=data, is_trainer=False, model_args=config, metric=metric).run().score

        study = optimize(objective, space, make_strategy("random", seed=0), n_trials=SMOKE_TRIALS)
        scores = [t.value for t in study.trials if t.value is not None]
        errors = {t.user_attrs.get(ERROR_TAG) for t in study.trials if t.state.name == "FAIL"}
        if not scores:
            raise RuntimeError(f"no trial of {SMOKE_TRIALS} completed: {sorted(e for e in errors if e)[:3]}")
        if not all(math.isfinite(s) for s in scores):
            raise ValueError(f"scores are not all finite: {scores}")
        state["cls"] = cls
        return f"{len(scores)} of {SMOKE_TRIALS} trials completed, {metric.name} {min(scores):.4g}..{max(scores):.4g}"

    def batch_inference() -> str:
        final = state["cls"](
            run_epochs=epochs,
            data=data,
            is_trainer=True,
            model_args=spec.default_config(),
            metric=metric,
            output_dir=workdir / "final",
        )
        final.run()
        rows = frame.drop(columns=[smoke["target"]])
        predictions = np.concatenate(
            [
                np.asarray(final.predict(rows.iloc[i : i + spec.batch_size]))
                for i in range(0, len(rows), spec.batch_size)
            ]
        )
        if len(predictions) != len(rows):
            raise ValueError(f"{len(predictions)} predictions for {len(rows)} rows")
        state["final"], state["rows"] = final, rows
        batches = math.ceil(len(rows) / spec.batch_size)
        return f"{len(rows)} rows in {batches} batches of at most {spec.batch_size}"

    def deployable() -> str:
        from automl_tasks.deploy.backends import REFERENCE, get_backend

        final, request = state["final"], state["rows"].head(1)
        path = final.export_onnx(workdir / "model.onnx")
        feed = final.onnx_feed(request)
        answer = final.onnx_labels(get_backend(REFERENCE).compile(path, feed).run(feed))
        native = np.asarray(final.predict(request))
        if not np.array_equal(np.asarray(answer).ravel(), native.ravel()):
            raise ValueError(f"ONNX Runtime answered {answer} where the native model answered {native}")
        state["onnx"], state["feed"] = path, feed
        return f"ONNX ({path.stat().st_size / 1024:.0f} KB) answered one request like the native model"

    def edge_optimisable() -> str:
        from automl_tasks.deploy.backends import PARITY_FAILED, REFERENCE, backend_names, compare_engines

        # ONNX Runtime is the reference (it answered like the native model above); every
        # other engine gets ok / parity failed / failed: why / unavailable: why
        engines = [name for name in backend_names() if name != REFERENCE]
        verdicts = compare_engines(state["onnx"], state["feed"], engines=engines)
        text = "; ".join([f"{REFERENCE}: ok (reference)", *(str(v) for v in verdicts)])
        if any(v.status == PARITY_FAILED for v in verdicts):  # a wrong answer is worse than none
            raise RuntimeError(text)
        return text

    capabilities: list[Capability] = []
    for name, check in zip(CAPABILITIES, (searchable, batch_inference, deployable, edge_optimisable), strict=True):
        failed = next((c for c in capabilities if not c.ok), None)
        capabilities.append(_skipped(name, f"{failed.name} failed") if failed else _timed(name, check))
    return CapabilityReport(spec.name, spec.version, spec.source, capabilities)
