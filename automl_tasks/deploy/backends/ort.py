"""ONNX Runtime on CPU: the engine loopml serves with, and the parity reference."""

from __future__ import annotations

import numpy as np

from automl_tasks.deploy.backends.base import FP32, BackendOptions, DeploymentBackend, Feed, Runner


class OnnxRuntimeRunner(Runner):
    def __init__(self, session) -> None:
        self.session = session

    def run(self, feed: Feed) -> list[np.ndarray]:
        return [np.asarray(out) for out in self.session.run(None, dict(feed))]


class OnnxRuntimeBackend(DeploymentBackend):
    """ONNX Runtime's CPU execution provider, all graph optimisations on."""

    name = "onnxruntime"
    # same kernels as the reference; 1e-5 still allows other thread counts' summation order
    tolerances = {FP32: 1e-5}

    def unavailable_reason(self) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return f"the onnxruntime package is not installed ({exc})"
        return None

    def _compile(self, model: bytes, example_feed: dict[str, np.ndarray], options: BackendOptions) -> Runner:
        return OnnxRuntimeRunner(session(model, threads=options.threads))


def session(model: bytes | str, *, threads: int | None = None, providers: list | None = None):
    """An ONNX Runtime session with loopml's settings (the one place sessions are built); model: bytes or a path."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=providers or ["CPUExecutionProvider"])
