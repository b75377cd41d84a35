"""OpenVINO and TVM are compared with ONNX Runtime on a real ONNX model: ok within the
stated tolerance, a wrong answer is a parity failure, a missing engine says why."""

from __future__ import annotations

import numpy as np
import pytest

from automl_tasks.deploy.engines import (
    ENGINES,
    OK,
    PARITY_FAILED,
    TOLERANCE,
    UNAVAILABLE,
    compare_engines,
    max_abs_diff,
    run_onnxruntime,
)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """x (1x6) -> logits = x W + b -> probabilities = softmax(logits): a tiny classifier head."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(6, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3]),
        ],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("engines") / "head.onnx"
    onnx.save(model, str(path))
    return path, {"x": rng.normal(size=(1, 6)).astype(np.float32)}


def test_openvino_and_tvm_answer_like_onnx_runtime_within_the_tolerance(onnx_model):
    path, feed = onnx_model
    verdicts = {v.engine: v for v in compare_engines(path, feed)}
    assert set(verdicts) == set(ENGINES) == {"openvino", "tvm"}
    for name, verdict in verdicts.items():  # both are installed by the lock file
        assert verdict.status == OK, str(verdict)
        assert verdict.max_abs_diff <= TOLERANCE
        assert str(verdict).startswith(f"{name}: ok (max abs diff")


def test_an_engine_that_answers_differently_fails_parity(onnx_model):
    path, feed = onnx_model

    def off_by_a_little(p, f):
        return [out + np.float32(0.01) for out in run_onnxruntime(p, f)]

    def right(p, f):
        return run_onnxruntime(p, f)

    def wrong_shape(p, f):
        return [out.ravel()[:1] for out in run_onnxruntime(p, f)]

    verdicts = compare_engines(path, feed, engines={"off": off_by_a_little, "right": right, "shape": wrong_shape})
    off, same, shape = verdicts
    assert off.status == PARITY_FAILED and off.max_abs_diff == pytest.approx(0.01, rel=1e-3)
    assert str(off).startswith("off: parity failed: max abs diff 0.01 > tol 0.0001")
    assert same.status == OK and same.max_abs_diff == 0.0
    assert shape.status == PARITY_FAILED and "inf" in shape.detail


def test_an_engine_that_cannot_run_is_unavailable_with_its_reason(onnx_model):
    path, feed = onnx_model

    def not_installed(p, f):
        raise ModuleNotFoundError("No module named 'openvino'")

    (verdict,) = compare_engines(path, feed, engines={"openvino": not_installed})
    assert verdict.status == UNAVAILABLE
    assert str(verdict) == "openvino: unavailable: ModuleNotFoundError: No module named 'openvino'"


def test_max_abs_diff_counts_nan_and_missing_outputs_as_infinite():
    one = [np.array([1.0, 2.0])]
    assert max_abs_diff(one, [np.array([1.0, 2.5])]) == 0.5
    assert max_abs_diff(one, [np.array([1.0, np.nan])]) == float("inf")
    assert max_abs_diff(one, []) == float("inf")
