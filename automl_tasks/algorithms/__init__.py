"""Contributed algorithms: `algorithm.yaml` specs, the registration smoke test, the registry."""

from automl_tasks.algorithms.registry import (
    builtin_specs,
    estimator_reference,
    register,
    registered,
    report_of,
    require,
    resolve,
)
from automl_tasks.algorithms.smoke import CAPABILITIES, Capability, CapabilityReport
from automl_tasks.algorithms.spec import AlgorithmSpec, load_spec

__all__ = [
    "CAPABILITIES",
    "AlgorithmSpec",
    "Capability",
    "CapabilityReport",
    "builtin_specs",
    "estimator_reference",
    "load_spec",
    "register",
    "registered",
    "report_of",
    "require",
    "resolve",
]
