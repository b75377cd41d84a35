"""Compile, check parity, measure: whether a build is deployable, and why not.

Every compile is followed by a parity check against a reference on a fixed feed: the
native model's outputs when the caller has them, otherwise ONNX Runtime's (the engine
loopml serves with, checked against the native model at registration). The tolerance is
the engine's for the precision asked (`DeploymentBackend.tolerances`), relative to each
output's scale: `max |out - ref| <= tol * max(1, max |ref|)`.

A verdict is one of
- ``ok``: compiled, ran, every output within the tolerance: deployable;
- ``parity failed: max abs diff X > tol T``: it ran and answered differently: not deployable;
- ``failed: <step>: <error>``: the engine is here but could not compile or run this model
  (an operator it lacks, a tuning crash); the error is kept, and logged with its traceback;
- ``unavailable: <reason>``: the engine cannot run on this machine at all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from automl_tasks.deploy.backends.base import BackendOptions, DeploymentBackend, Feed, OnnxSource, Runner, read_model
from automl_tasks.deploy.backends.registry import REFERENCE, get_backend
from automl_tasks.deploy.measure import BATCH_SIZES, REPEATS, WARMUP, Measurement, PeakMemory, measure_runner

log = logging.getLogger(__name__)

OK, PARITY_FAILED, FAILED, UNAVAILABLE = "ok", "parity failed", "failed", "unavailable"


@dataclass(frozen=True)
class Verdict:
    """One engine's result on one model at one precision."""

    engine: str
    status: str  # OK, PARITY_FAILED, FAILED or UNAVAILABLE
    detail: str = ""
    max_abs_diff: float | None = None
    tolerance: float | None = None
    precision: str = "fp32"

    @property
    def deployable(self) -> bool:
        return self.status == OK

    def __str__(self) -> str:
        if self.status == OK:
            return f"{self.engine}: ok (max abs diff {self.max_abs_diff:.2g} <= tol {self.tolerance:g})"
        return f"{self.engine}: {self.status}: {self.detail}"


@dataclass
class EngineResult:
    """A verdict, the runner when it compiled, and measurements when they were asked for."""

    verdict: Verdict
    runner: Runner | None = None
    measurement: Measurement | None = None
    compile_seconds: float | None = None


def _numeric(values: np.ndarray) -> bool:
    return np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_


def max_abs_diff(reference: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    """Largest absolute difference over all outputs; inf if the counts or sizes disagree, or on NaN.

    Text outputs (class labels as strings) count 0 when every value is equal, inf otherwise."""
    if len(reference) != len(outputs):
        return float("inf")
    worst = 0.0
    for ref, out in zip(reference, outputs, strict=True):
        ref, out = np.asarray(ref), np.asarray(out)
        if ref.size != out.size:
            return float("inf")
        if not (_numeric(ref) and _numeric(out)):
            if not np.array_equal(ref.ravel().astype(str), out.ravel().astype(str)):
                return float("inf")
        elif ref.size:
            diff = np.abs(ref.astype(np.float64).ravel() - out.astype(np.float64).ravel())
            worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
    return worst


def parity(reference: list[np.ndarray], outputs: list[np.ndarray], tolerance: float) -> tuple[bool, float, float]:
    """(within, max abs diff, the tolerance scaled to the reference) over all outputs."""
    diff = max_abs_diff(reference, outputs)
    numeric = [np.asarray(r) for r in reference if np.size(r) and _numeric(np.asarray(r))]
    scale = max([1.0, *(float(np.abs(r.astype(np.float64)).max()) for r in numeric)])
    return diff <= tolerance * scale, diff, tolerance * scale


def reference_outputs(onnx_model: OnnxSource, feed: Feed) -> list[np.ndarray]:
    """ONNX Runtime's outputs: the reference when no native outputs are given. Raises on failure."""
    return get_backend(REFERENCE).compile(onnx_model, feed).run(feed)


#: lines of an engine's error that only say where in the engine's C++ it was raised
_SOURCE_LOCATION = re.compile(r"^(Exception from|Check '.*' failed at) \S+:\d+:?$")


def _error(step: str, exc: BaseException) -> str:
    """One line naming the step and the cause; OpenVINO's and TVM's messages start with
    source locations and give the cause (e.g. the unconverted operators) further down."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    told = [line for line in lines if not _SOURCE_LOCATION.match(line)] or lines
    return f"{step}: {type(exc).__name__}: {'; '.join(told)[:500]}"


def evaluate(
    backend: DeploymentBackend | str,
    onnx_model: OnnxSource,
    feed: Feed,
    *,
    reference: list[np.ndarray] | None = None,
    options: BackendOptions | Mapping[str, Any] | None = None,
    measure: bool = False,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
) -> EngineResult:
    """Compile `onnx_model` on `backend`, check parity on `feed`, optionally measure it.

    Never raises for the engine's own failures (they are the verdict); raises for the
    caller's (an unknown engine name, bad options, a reference that cannot be computed)."""
    import time

    engine = get_backend(backend) if isinstance(backend, str) else backend
    opts = BackendOptions.coerce(options)
    tolerance = engine.tolerance(opts.precision)
    model = read_model(onnx_model)
    reason = engine.unavailable_reason()
    if reason:
        return EngineResult(Verdict(engine.name, UNAVAILABLE, reason, precision=opts.precision))
    if reference is None:
        reference = reference_outputs(model, feed)
    peak = PeakMemory().__enter__()
    started = time.perf_counter()
    try:
        runner = engine.compile(model, feed, opts)
    except Exception as exc:  # the engine's failure is the verdict; the traceback goes to the log
        log.warning("%s could not compile the model", engine.name, exc_info=True)
        return EngineResult(Verdict(engine.name, FAILED, _error("compile", exc), precision=opts.precision))
    compile_seconds = time.perf_counter() - started
    try:
        outputs = runner.run(feed)
    except Exception as exc:
        log.warning("%s could not run the model", engine.name, exc_info=True)
        return EngineResult(Verdict(engine.name, FAILED, _error("run", exc), precision=opts.precision))
    within, diff, scaled = parity(reference, outputs, tolerance)
    if not within:
        shapes = f"shapes {[np.shape(r) for r in reference]} vs {[np.shape(o) for o in outputs]}"
        detail = f"max abs diff {diff:.3g} > tol {scaled:g} ({opts.precision}; {shapes})"
        verdict = Verdict(engine.name, PARITY_FAILED, detail, diff, scaled, opts.precision)
        log.warning("%s", verdict)
        return EngineResult(verdict, runner, compile_seconds=compile_seconds)
    verdict = Verdict(engine.name, OK, "", diff, scaled, opts.precision)
    log.info("%s", verdict)
    measurement = None
    if measure:
        latency = measure_runner(runner.run, feed, batch_sizes=batch_sizes, warmup=warmup, repeats=repeats)
        peak.__exit__(None, None, None)
        measurement = Measurement(
            latency, len(model), runner.compiled_size_bytes, round(peak.mb, 1), f"{peak.source}, compile + runs"
        )
    return EngineResult(verdict, runner, measurement, compile_seconds)


def compare_engines(
    onnx_model: OnnxSource,
    feed: Feed,
    *,
    engines: list[str] | None = None,
    reference: list[np.ndarray] | None = None,
    options: Mapping[str, BackendOptions | Mapping[str, Any]] | None = None,
) -> list[Verdict]:
    """One verdict per engine (all registered ones by default) on one model and feed."""
    from automl_tasks.deploy.backends.registry import backend_names

    model = read_model(onnx_model)
    if reference is None:
        reference = reference_outputs(model, feed)
    options = options or {}
    return [
        evaluate(name, model, feed, reference=reference, options=options.get(name)).verdict
        for name in (engines if engines is not None else backend_names())
    ]
