"""The artifacts of a registered version: their names, and reading them back.

One module that both the writing side (`pipelines.registration`) and the reading side
(`families.loading`, `families.evaluation`, serving) import, so neither imports the other.
The label spec's own file name lives with it in `core.labels`.
"""

from __future__ import annotations

import json
from pathlib import Path

from automl_tasks.estimators.features import FeatureSchema

FEATURE_SCHEMA_FILE = "feature_schema.json"
ONNX_ARTIFACT = "onnx/model.onnx"


def feature_schema_of(run_id: str) -> FeatureSchema:
    """The feature schema logged with a version's run."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=FEATURE_SCHEMA_FILE)
    return FeatureSchema.from_dict(json.loads(Path(path).read_text()))


def model_id_of(version) -> str | None:
    """The MLflow 3 logged model behind a version, by the id in its `models:/<id>` source
    (None for a version registered from a run's artifacts, the MLflow 2 layout)."""
    model_id = getattr(version, "model_id", None) or str(version.source).removeprefix("models:/")
    return model_id if model_id.startswith("m-") else None


def model_metrics_of(version) -> dict[str, float]:
    """The MLflow 3 model metrics of a version's logged model (e.g. its latency on the
    deployment target); the latest value of each key."""
    import mlflow

    model_id = model_id_of(version)
    if model_id is None:
        return {}
    return {metric.key: metric.value for metric in mlflow.get_logged_model(model_id).metrics or []}
