"""The estimator interface and the built-in algorithms."""

from automl_tasks.core.errors import InvalidValueError
from automl_tasks.estimators.base import DataSpec, Estimator, EstimatorResult
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.estimators.metrics import Metric, resolve_metric
from automl_tasks.estimators.tabular import MODELS, TabularEstimator, make_pipeline

__all__ = [
    "MODELS",
    "TABULAR_ESTIMATOR",
    "DataSpec",
    "Estimator",
    "EstimatorResult",
    "FeatureSchema",
    "Metric",
    "TabularEstimator",
    "feature_frame",
    "make_pipeline",
    "estimator_class",
    "resolve_metric",
]


#: the reference of the built-in tabular estimator (the NoCode pipeline's algorithm)
TABULAR_ESTIMATOR = "automl_tasks.estimators:TabularEstimator"


def estimator_class(reference: str) -> type[Estimator]:
    """Import the Estimator subclass that a `package.module:Class` reference names.

    Algorithm names ("tabular", "digits_cnn", a registered name or folder) are turned into
    references once, when a search is planned (`automl_tasks.algorithms.estimator_reference`),
    so a plan and everything that reads it hold a reference only."""
    import importlib

    module_name, colon, class_name = reference.partition(":")
    if not colon or not module_name or not class_name:
        raise InvalidValueError(f"algorithm {reference!r} is not a 'package.module:Class' reference")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise InvalidValueError(f"algorithm {reference!r} cannot be imported: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise InvalidValueError(f"algorithm {reference!r} is not an Estimator subclass")
    return cls
