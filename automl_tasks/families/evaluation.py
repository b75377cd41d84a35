"""Score a family's model version on a labelled table with the family's metric.

One function for every comparison that must be like for like: a new version on the
family's evaluation data, the champion on a recent labelled window (concept drift), and
both versions on fresh evaluation data before a drift-retrain promotion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import InvalidValueError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import METRIC_TAG, TARGET_TAG
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.estimators.metrics import Metric

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionModel:
    """A registered version's native pipeline with what is needed to score it."""

    family: str
    version: str
    pipeline: Any
    schema: FeatureSchema
    target: str
    metric: Metric
    tags: dict[str, str]


def load_version_model(ws: Workspace, family: str, version: str) -> VersionModel:
    """The native (scikit-learn) pipeline of `family` version `version` and its feature schema."""
    import mlflow

    from automl_tasks.core.tracking import mlflow_client
    from automl_tasks.families.artifacts import feature_schema_of
    from automl_tasks.families.loading import TEXT_SCHEMA, is_text_version, load_text_version

    mv = mlflow_client(ws).get_model_version(family, version)
    tags = dict(mv.tags)
    if is_text_version(tags):  # its ONNX model answers predict/predict_proba on a frame of texts
        pipeline, schema = load_text_version(ws, mv), TEXT_SCHEMA
    else:
        pipeline, schema = mlflow.sklearn.load_model(f"models:/{family}/{version}"), feature_schema_of(mv.run_id)
    return VersionModel(
        family=family,
        version=str(version),
        pipeline=pipeline,
        schema=schema,
        target=tags.get(TARGET_TAG, "target"),
        metric=Metric(tags.get(METRIC_TAG, "roc_auc")),
        tags=tags,
    )


def missing_columns(frame: pd.DataFrame, schema: FeatureSchema, target: str | None = None) -> list[str]:
    """Columns the model needs (and the target, if given) that `frame` lacks."""
    needed = list(schema.input_columns) + ([target] if target else [])
    return [c for c in needed if c not in frame.columns]


def score_pipeline(pipeline: Any, frame: pd.DataFrame, schema: FeatureSchema, target: str, metric: Metric) -> float:
    """`metric` of `pipeline` on the labelled rows of `frame` (rows with a missing target are skipped)."""
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise InvalidValueError(f"no labelled rows in column {target!r} to score on")
    features = feature_frame(labelled, schema)
    truth = labelled[target].to_numpy()
    classes = getattr(pipeline, "classes_", None)
    if classes is not None:
        truth = np.asarray(truth).astype(np.asarray(classes).dtype, copy=False)
    prediction = pipeline.predict_proba(features) if metric.needs_proba else pipeline.predict(features)
    return metric(truth, prediction, classes)


def score_version(model: VersionModel, frame: pd.DataFrame) -> float:
    """`score_pipeline` for a loaded registered version."""
    return score_pipeline(model.pipeline, frame, model.schema, model.target, model.metric)


def trivial_baseline_score(
    train_target: np.ndarray, frame: pd.DataFrame, target: str, metric: Metric, task_type: str
) -> float | None:
    """`metric` on the labelled rows of `frame` of the trivial model fitted on `train_target`:
    the class prior (probabilities) / majority class for classification, the mean for
    regression. None when the metric is undefined for it (e.g. an unseen class)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    labelled = frame[frame[target].notna()]
    if labelled.empty:
        return None
    model = DummyRegressor(strategy="mean") if task_type == "regression" else DummyClassifier(strategy="prior")
    model.fit(np.zeros((len(train_target), 1)), np.asarray(train_target))
    rows = np.zeros((len(labelled), 1))
    classes = getattr(model, "classes_", None)
    truth = labelled[target].to_numpy()
    if classes is not None:
        truth = truth.astype(np.asarray(classes).dtype, copy=False)
    prediction = model.predict_proba(rows) if metric.needs_proba else model.predict(rows)
    try:
        return metric(truth, prediction, classes)
    except ValueError as exc:
        log.warning("no trivial baseline score (%s)", exc)
        return None
