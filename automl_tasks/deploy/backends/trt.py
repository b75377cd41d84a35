"""TensorRT through ONNX Runtime's TensorRT execution provider (FP32 or FP16).

It needs an NVIDIA GPU with CUDA and an onnxruntime build that has the TensorRT
provider (the `onnxruntime-gpu` wheel with TensorRT libraries). On any other machine it
says which of those is missing. Engines are cached in `options.work_dir` (TensorRT's
build takes seconds to minutes), so a second compile of the same model reuses them.
The direct `tensorrt` Python API is not used: through ONNX Runtime the same session
code, feeds and outputs serve every engine, and unsupported nodes fall back to CUDA.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from automl_tasks.deploy.backends.base import FP16, FP32, BackendOptions, DeploymentBackend, Runner
from automl_tasks.deploy.backends.ort import OnnxRuntimeRunner, session

TRT_PROVIDER = "TensorrtExecutionProvider"


def gpu_missing_reason() -> str | None:
    """None when an NVIDIA GPU driver answers, otherwise what is missing."""
    if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
        return "no NVIDIA GPU found (no /dev/nvidiactl, no nvidia-smi)"
    return None


class TensorRtBackend(DeploymentBackend):
    """TensorRT on an NVIDIA GPU, via ONNX Runtime's TensorRT execution provider."""

    name = "tensorrt"
    # fp32 on TensorRT still picks TF32 / other tactics; fp16 keeps ~3 significant digits
    tolerances = {FP32: 1e-3, FP16: 1e-2}

    def unavailable_reason(self) -> str | None:
        missing = []
        gpu = gpu_missing_reason()
        if gpu:
            missing.append(gpu)
        try:
            import onnxruntime as ort

            providers = ort.get_available_providers()
            if TRT_PROVIDER not in providers:
                missing.append(
                    f"onnxruntime {ort.__version__} has no {TRT_PROVIDER} (it offers {', '.join(providers)}; "
                    "install onnxruntime-gpu with TensorRT)"
                )
        except ImportError:
            missing.append("onnxruntime is not installed")
        if not missing:
            return None
        return "TensorRT needs an NVIDIA GPU with CUDA and ONNX Runtime's TensorRT provider: " + "; ".join(missing)

    def _compile(self, model: bytes, example_feed: dict[str, np.ndarray], options: BackendOptions) -> Runner:
        cache = str(options.work_dir / "tensorrt-cache") if options.work_dir else tempfile.mkdtemp(prefix="trt-")
        os.makedirs(cache, exist_ok=True)
        trt_options = {
            "trt_fp16_enable": options.precision == FP16,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache,
        }
        providers = [(TRT_PROVIDER, trt_options), "CUDAExecutionProvider", "CPUExecutionProvider"]
        built = session(model, threads=options.threads, providers=providers)
        if TRT_PROVIDER not in built.get_providers():
            raise RuntimeError(
                f"ONNX Runtime did not enable {TRT_PROVIDER}; session providers: {built.get_providers()}"
            )
        return OnnxRuntimeRunner(built)
