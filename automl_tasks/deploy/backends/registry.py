"""Deployment engines by name: the built-ins and those installed through entry points.

A package adds an engine with an entry point in the group
`DEPLOY_BACKENDS_ENTRY_POINT_GROUP` ("loopml.deploy_backends") whose object is a
`DeploymentBackend` subclass (or a callable returning an instance)::

    [project.entry-points."loopml.deploy_backends"]
    myengine = "my_package.engine:MyEngineBackend"

A built-in name cannot be taken over by an entry point.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from automl_tasks.core.errors import UnknownBackendError
from automl_tasks.core.tags import DEPLOY_BACKENDS_ENTRY_POINT_GROUP
from automl_tasks.deploy.backends.base import DeploymentBackend

#: the reference engine: parity is judged against its outputs when no native ones are given
REFERENCE = "onnxruntime"

BUILTIN: dict[str, str] = {
    "onnxruntime": "automl_tasks.deploy.backends.ort:OnnxRuntimeBackend",
    "openvino": "automl_tasks.deploy.backends.ov:OpenVinoBackend",
    "tvm": "automl_tasks.deploy.backends.tvm_relax:TvmBackend",
    "tensorrt": "automl_tasks.deploy.backends.trt:TensorRtBackend",
}


def _installed() -> dict:
    return {p.name: p for p in entry_points(group=DEPLOY_BACKENDS_ENTRY_POINT_GROUP) if p.name not in BUILTIN}


def backend_names() -> list[str]:
    """Every engine name: built-ins first, then installed ones (sorted)."""
    return [*BUILTIN, *sorted(_installed())]


def get_backend(name: str) -> DeploymentBackend:
    """The engine called `name`; `UnknownBackendError` names it and the known ones."""
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        return getattr(import_module(module), attr)()
    installed = _installed()
    if name not in installed:
        raise UnknownBackendError(f"unknown deployment engine {name!r}; known engines: {', '.join(backend_names())}")
    try:
        backend = installed[name].load()()
    except Exception as exc:  # a contributor's package is broken: say which and why, do not hide it
        raise UnknownBackendError(
            f"deployment engine {name!r} (entry point {installed[name].value}) cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(backend, DeploymentBackend):
        raise UnknownBackendError(
            f"deployment engine {name!r} (entry point {installed[name].value}) is a "
            f"{type(backend).__name__}, not a DeploymentBackend"
        )
    return backend


def all_backends() -> dict[str, DeploymentBackend]:
    """Every engine, available here or not (ask each its `unavailable_reason`)."""
    return {name: get_backend(name) for name in backend_names()}
