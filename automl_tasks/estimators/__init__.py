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
    """The estimator class registered under `algorithm`."""
    classes: dict[str, type[Estimator]] = {"tabular": TabularEstimator}
    if algorithm not in classes:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {sorted(classes)}")
    return classes[algorithm]
