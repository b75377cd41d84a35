"""The estimator interface and the built-in algorithms."""

from automl_tasks.estimators.base import DataSpec, Estimator, EstimatorResult
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.estimators.metrics import Metric, resolve_metric
from automl_tasks.estimators.tabular import MODELS, TabularEstimator, make_pipeline

__all__ = [
    "MODELS",
    "DataSpec",
    "Estimator",
    "EstimatorResult",
    "FeatureSchema",
    "Metric",
    "TabularEstimator",
    "feature_frame",
    "make_pipeline",
    "resolve_metric",
]


def estimator_class(algorithm: str) -> type[Estimator]:
    """The estimator class registered under `algorithm`, or `package.module:Class` of any
    importable Estimator subclass (how contributed and test algorithms are named)."""
    classes: dict[str, type[Estimator]] = {"tabular": TabularEstimator}
    if algorithm in classes:
        return classes[algorithm]
    if ":" not in algorithm:
        from automl_tasks.algorithms.registry import builtin_specs

        spec = builtin_specs().get(algorithm)
        algorithm = spec.estimator if spec else algorithm
    if ":" in algorithm:
        import importlib

        module_name, _, class_name = algorithm.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"algorithm {algorithm!r} cannot be imported: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Estimator)):
            raise ValueError(f"algorithm {algorithm!r} is not an Estimator subclass")
        return cls
    raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {sorted(classes)} or 'package.module:Class'")
