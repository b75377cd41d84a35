"""Dynamic int8 quantisation of an ONNX text model (ONNX Runtime's quantiser): weights of the
MatMul/Gemm layers stored as int8, activations quantised on the fly.

Measured, not assumed: on CPUs without VNNI int8 matrix products are not faster, so the
compile step times the int8 model beside its fp32 parent and the Pareto gate decides.
"""

from __future__ import annotations

from pathlib import Path


def quantise_dynamic(source: Path, target: Path) -> Path:
    """Write the int8 version of `source` at `target`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target
