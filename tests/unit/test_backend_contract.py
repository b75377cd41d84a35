"""Every deployment engine passes the shipped contract (automl_tasks.testing.backends).

An engine that cannot run on this machine is skipped with its reason printed (`-ra`);
TensorRT's tests are marked `gpu`: `pytest -m gpu` runs them unchanged on a GPU machine.
"""

from __future__ import annotations

import pytest

from automl_tasks.deploy.backends import get_backend
from automl_tasks.testing.backends import check_backend

CPU_ENGINES = ["onnxruntime", "openvino", "tvm"]


def _check_or_skip(name: str, options=None):
    backend = get_backend(name)
    reason = backend.unavailable_reason()
    if reason:
        pytest.skip(f"{name} unavailable: {reason}")
    return check_backend(backend, options=options)


@pytest.mark.parametrize("name", CPU_ENGINES)
def test_cpu_engine_passes_the_contract(name):
    result = _check_or_skip(name, {"threads": 1})
    assert result.measurement.latency[1].p50_ms > 0


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_passes_the_contract(precision, tmp_path):
    _check_or_skip("tensorrt", {"precision": precision, "work_dir": tmp_path})


def test_tensorrt_says_why_it_cannot_run_on_a_cpu_machine():
    reason = get_backend("tensorrt").unavailable_reason()
    if reason is None:
        pytest.skip("this machine can run TensorRT (covered by the gpu tests)")
    assert reason.startswith("TensorRT needs an NVIDIA GPU with CUDA")
