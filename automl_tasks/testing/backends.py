"""The contract every deployment engine passes, shipped for contributors.

    from automl_tasks.testing.backends import check_backend
    def test_my_engine():
        check_backend(MyEngineBackend())

`check_backend` compiles a small ONNX model (a two-layer MLP with a softmax head and a
dynamic batch dimension, unless you pass your own), checks parity with ONNX Runtime
within the engine's stated tolerance, runs it at batch 1 and 32, and checks that the
measurement has every field. It raises `AssertionError` saying which clause failed, and
`BackendUnavailableError` (with the engine's reason) when the engine cannot run here:
a test turns that into a skip that shows the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from automl_tasks.core.errors import BackendUnavailableError
from automl_tasks.deploy.backends.base import BackendOptions, DeploymentBackend, OnnxSource, Runner
from automl_tasks.deploy.backends.verdict import OK, EngineResult, evaluate
from automl_tasks.deploy.measure import BATCH_SIZES


def tiny_mlp_onnx(inputs: int = 6, hidden: int = 16, classes: int = 3, *, seed: int = 0) -> bytes:
    """x [N, inputs] -> Relu(x W1 + b1) W2 + b2 -> (logits, Softmax): float32, batch dimension "N"."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int):
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W1"], ["h"]),
            helper.make_node("Add", ["h", "B1"], ["hb"]),
            helper.make_node("Relu", ["hb"], ["hr"]),
            helper.make_node("MatMul", ["hr", "W2"], ["hw"]),
            helper.make_node("Add", ["hw", "B2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", inputs])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes]),
        ],
        initializer=[
            weight("W1", inputs, hidden),
            weight("B1", hidden),
            weight("W2", hidden, classes),
            weight("B2", classes),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_feed(rows: int = 4, inputs: int = 6, *, seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).normal(size=(rows, inputs)).astype(np.float32)}


def check_backend(
    backend: DeploymentBackend,
    onnx_model: OnnxSource | None = None,
    feed: Mapping[str, np.ndarray] | None = None,
    options: BackendOptions | Mapping[str, Any] | None = None,
    *,
    repeats: int = 20,
) -> EngineResult:
    """Assert the deployment-engine contract on `backend`; return its result (verdict + measurement)."""
    assert isinstance(backend, DeploymentBackend), f"{backend!r} is not a DeploymentBackend"
    assert isinstance(backend.name, str) and backend.name, "a backend needs a non-empty name"
    reason = backend.unavailable_reason()
    assert reason is None or (isinstance(reason, str) and reason.strip()), (
        f"{backend.name}: unavailable_reason() must be None or a sentence, got {reason!r}"
    )
    if reason:
        raise BackendUnavailableError(f"{backend.name} is unavailable here: {reason}")
    model = tiny_mlp_onnx() if onnx_model is None else onnx_model
    feed = dict(tiny_feed() if feed is None else feed)
    result = evaluate(backend, model, feed, options=options, measure=True, repeats=repeats, warmup=3)
    verdict = result.verdict
    assert verdict.engine == backend.name, f"verdict names {verdict.engine!r}, backend is {backend.name!r}"
    assert verdict.status == OK, f"{backend.name} does not pass compile + parity: {verdict}"
    assert isinstance(result.runner, Runner), f"{backend.name}.compile returned {type(result.runner).__name__}"
    for rows in BATCH_SIZES:  # any batch size the model accepts, same number of outputs each time
        batch = {k: np.concatenate([v] * math.ceil(rows / len(v)))[:rows] for k, v in feed.items()}
        outputs = result.runner.run(batch)
        assert isinstance(outputs, list) and outputs, f"{backend.name}: run returned {type(outputs).__name__}"
        assert all(np.shape(o)[0] == rows for o in outputs), (
            f"{backend.name}: batch of {rows} gave shapes {[np.shape(o) for o in outputs]}"
        )
    measurement = result.measurement
    assert measurement is not None
    for rows in BATCH_SIZES:
        stats = measurement.latency.get(rows)
        assert stats is not None, f"{backend.name}: no latency at batch {rows}"
        assert 0 < stats.p50_ms <= stats.p99_ms, f"{backend.name}: batch {rows} latency {stats}"
    assert measurement.model_size_bytes > 0, f"{backend.name}: model size missing"
    assert measurement.peak_memory_mb is not None and measurement.peak_memory_mb >= 0
    metrics = measurement.as_metrics()
    for key in ("latency_p50_ms_b1", "latency_p99_ms_b1", "latency_p50_ms_b32", "latency_p99_ms_b32"):
        assert key in metrics, f"{backend.name}: metric {key} missing from {sorted(metrics)}"
    return result
