"""Edge engines checked against ONNX Runtime: do OpenVINO and TVM give the same answers?

A compiled model that answers differently from the exported one is worse than no
compiled model at all, so each engine gets one of three verdicts:

- ``ok``: it compiled the ONNX model and every output is within `TOLERANCE` of ONNX
  Runtime's (the reference, the runtime the model is served with);
- ``parity failed``: it ran, and an output differs by more than the tolerance;
- ``unavailable``: it is not installed, or it could not compile or run this model (for
  example an ``ai.onnx.ml`` operator it does not implement); the reason is kept.

Issue #12 will turn this into a full DeploymentBackend seam; this module is the small
self-contained check the algorithm smoke test needs today.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: largest absolute difference allowed between an engine's output and ONNX Runtime's.
#: The engines compute in float32 with their own kernels (fused ops, other summation
#: order); 1e-4 is far above that rounding noise and far below a wrong answer.
TOLERANCE = 1e-4

OK, PARITY_FAILED, UNAVAILABLE = "ok", "parity failed", "unavailable"

#: an engine: (onnx path, feed) -> outputs in the model's output order
Runner = Callable[[Path, Mapping[str, np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class EngineVerdict:
    """One engine's result on one model."""

    engine: str
    status: str  # OK, PARITY_FAILED or UNAVAILABLE
    detail: str
    max_abs_diff: float | None = None

    def __str__(self) -> str:
        if self.status == OK:
            return f"{self.engine}: ok (max abs diff {self.max_abs_diff:.2g} <= tol {TOLERANCE:g})"
        return f"{self.engine}: {self.status}: {self.detail}"


def run_onnxruntime(path: Path, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as rt

    options = rt.SessionOptions()
    options.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = rt.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [np.asarray(out) for out in session.run(None, dict(feed))]


def run_openvino(path: Path, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import openvino as ov

    # On CPUs with bf16 (AVX512_BF16, AMX) OpenVINO computes in bfloat16 by default, which
    # moved a small softmax head's outputs by 4e-3 here: ask for float32 like the export.
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled([feed[port.get_any_name()] for port in compiled.inputs])
    return [np.asarray(result[port]) for port in compiled.outputs]


def run_tvm(path: Path, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    model = onnx.load(str(path))
    names = [i.name for i in model.graph.input]
    module = from_onnx(model, shape_dict={name: feed[name].shape for name in names})
    machine = relax.VirtualMachine(tvm.compile(module, target="llvm"), tvm.cpu())
    out = machine["main"](*[tvm.runtime.tensor(feed[name]) for name in names])
    outputs = list(out) if isinstance(out, tvm.ir.Array | list | tuple) else [out]
    return [o.numpy() for o in outputs]


ENGINES: dict[str, Runner] = {"openvino": run_openvino, "tvm": run_tvm}


def max_abs_diff(reference: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    """Largest absolute difference over all outputs; inf if the shapes or counts disagree."""
    if len(reference) != len(outputs):
        return float("inf")
    worst = 0.0
    for ref, out in zip(reference, outputs, strict=True):
        ref, out = np.asarray(ref), np.asarray(out)
        if ref.size != out.size:
            return float("inf")
        if ref.size:
            diff = np.abs(ref.astype(np.float64).ravel() - out.astype(np.float64).ravel())
            worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
    return worst


def compare_engines(
    path: Path,
    feed: Mapping[str, np.ndarray],
    *,
    engines: Mapping[str, Runner] | None = None,
    tolerance: float = TOLERANCE,
) -> list[EngineVerdict]:
    """Run `feed` through ONNX Runtime and each engine; one verdict per engine.

    Raises whatever ONNX Runtime raises: without the reference there is nothing to compare."""
    reference = run_onnxruntime(path, feed)
    verdicts = []
    for name, run in (ENGINES if engines is None else engines).items():
        try:
            outputs = run(path, feed)
        except Exception as exc:  # not installed, or cannot compile this model: say why
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            verdicts.append(EngineVerdict(name, UNAVAILABLE, f"{type(exc).__name__}: {reason}"))
            continue
        diff = max_abs_diff(reference, outputs)
        if diff <= tolerance:
            verdicts.append(EngineVerdict(name, OK, "", diff))
        else:
            shapes = f"{[np.shape(r) for r in reference]} vs {[np.shape(o) for o in outputs]}"
            verdicts.append(
                EngineVerdict(name, PARITY_FAILED, f"max abs diff {diff:.3g} > tol {tolerance:g} ({shapes})", diff)
            )
        log.info("%s", verdicts[-1])
    return verdicts
