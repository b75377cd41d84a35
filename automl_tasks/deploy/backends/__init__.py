"""Deployment engines behind one seam (issue #12): ONNX Runtime, OpenVINO, TVM, TensorRT.

    from automl_tasks.deploy.backends import evaluate, get_backend
    result = evaluate("openvino", "model.onnx", feed, measure=True)
    print(result.verdict, result.measurement.as_metrics())

`base` holds the contract (`DeploymentBackend`, `Runner`, `BackendOptions`), `registry`
the names (built-ins and the `loopml.deploy_backends` entry points), `verdict` the
parity check and verdicts; `automl_tasks.testing.backends.check_backend` is the contract
test a contributed engine must pass.
"""

from automl_tasks.deploy.backends.base import BackendOptions, DeploymentBackend, Runner
from automl_tasks.deploy.backends.registry import REFERENCE, all_backends, backend_names, get_backend
from automl_tasks.deploy.backends.verdict import (
    FAILED,
    OK,
    PARITY_FAILED,
    UNAVAILABLE,
    EngineResult,
    Verdict,
    compare_engines,
    evaluate,
)

__all__ = [
    "FAILED",
    "OK",
    "PARITY_FAILED",
    "REFERENCE",
    "UNAVAILABLE",
    "BackendOptions",
    "DeploymentBackend",
    "EngineResult",
    "Runner",
    "Verdict",
    "all_backends",
    "backend_names",
    "compare_engines",
    "evaluate",
    "get_backend",
]
