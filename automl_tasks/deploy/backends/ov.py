"""OpenVINO through its own runtime (`openvino.Core`), not as an ONNX Runtime provider."""

from __future__ import annotations

import numpy as np

from automl_tasks.deploy.backends.base import FP16, FP32, BackendOptions, Feed, Runner
from automl_tasks.deploy.backends.lowering import StandardOpsBackend

_PRECISION = {FP32: "f32", FP16: "f16"}


class OpenVinoRunner(Runner):
    def __init__(self, compiled, size: int | None) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.inputs = [port.get_any_name() for port in compiled.inputs]
        self.compiled_size_bytes = size

    def run(self, feed: Feed) -> list[np.ndarray]:
        result = self.request.infer([feed[name] for name in self.inputs])
        # copy: the request reuses its output buffers on the next call
        return [np.array(result[port]) for port in self.compiled.outputs]


class OpenVinoBackend(StandardOpsBackend):
    """OpenVINO's CPU plugin; reads the ONNX model directly."""

    name = "openvino"
    # its own kernels (fused ops, other summation order) in float32; fp16 keeps ~3 digits
    tolerances = {FP32: 1e-4, FP16: 1e-2}

    def unavailable_reason(self) -> str | None:
        try:
            import openvino as ov

            devices = ov.Core().available_devices
        except ImportError as exc:
            return f"the openvino package is not installed ({exc})"
        return None if "CPU" in devices else f"OpenVINO finds no CPU device (devices: {devices})"

    def _compile(self, model: bytes, example_feed: dict[str, np.ndarray], options: BackendOptions) -> Runner:
        import openvino as ov

        core = ov.Core()
        # On CPUs with bf16 (AVX512_BF16, AMX) OpenVINO computes in bfloat16 by default,
        # which moved a small softmax head's outputs by 4e-3: ask for the precision wanted.
        config: dict[str, object] = {"INFERENCE_PRECISION_HINT": _PRECISION[options.precision]}
        if options.threads is not None:
            config["INFERENCE_NUM_THREADS"] = options.threads
        # bytes in, no weights file: the ONNX model carries its initializers inline
        graph = core.read_model(model, ov.Tensor(np.empty(0, dtype=np.uint8)))
        compiled = core.compile_model(graph, "CPU", config)
        try:
            size = len(compiled.export_model())
        except Exception:  # export is optional per plugin; size then falls back to the ONNX file's
            size = None
        return OpenVinoRunner(compiled, size)
