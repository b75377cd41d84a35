"""Batch inference: predict a whole dataset version with a family's model, store the result.

The predictions (input columns + `prediction` + class probabilities) become a new dataset
version `<family>.predictions` in the DVC store and an artifact of an MLflow run of the
family, tagged with the model version and the input dataset version.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from automl_tasks.core.errors import InvalidValueError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import INPUT_DATASET_URI_TAG, KIND_TAG, MODEL_VERSION_TAG, OUTPUT_DATASET_URI_TAG
from automl_tasks.core.tracking import ensure_experiment, mlflow_client
from automl_tasks.data import DatasetStore
from automl_tasks.estimators.features import feature_frame
from automl_tasks.families.loading import load_predictor

log = logging.getLogger(__name__)


def predict_dataset(
    ws: Workspace, family: str, dataset_uri: str, *, model: str = "champion", batch_rows: int = 10_000
) -> dict[str, Any]:
    """Predict every row of `dataset_uri` in batches; return the predictions' dataset URI."""
    store = DatasetStore(ws.datasets, ws.dvc_remote)
    frame = store.read(dataset_uri)
    predictor = load_predictor(ws, family, model)
    missing = sorted(set(predictor.schema.input_columns) - set(frame.columns))
    if missing:
        raise InvalidValueError(
            f"dataset {dataset_uri} lacks the columns {missing} that {family} v{predictor.version} needs"
        )
    features = feature_frame(frame, predictor.schema)
    labels, probas = [], []
    started = time.perf_counter()
    for start in range(0, len(features), batch_rows):
        batch_labels, batch_proba = predictor.predict_fn(features.iloc[start : start + batch_rows])
        labels.append(np.asarray(batch_labels))
        if batch_proba is not None:
            probas.append(np.asarray(batch_proba))
        log.info("batch inference: %d of %d rows", min(start + batch_rows, len(features)), len(features))
    seconds = time.perf_counter() - started
    out = frame.copy()
    out["prediction"] = np.concatenate(labels) if labels else []
    if probas:
        proba = np.concatenate(probas)
        for k in range(proba.shape[1]):
            out[f"probability_{k}"] = proba[:, k]
    stored = store.put(f"{family}.predictions", out)
    client = mlflow_client(ws)
    run = client.create_run(
        ensure_experiment(ws, family),
        run_name=f"batch inference v{predictor.version}",
        tags={
            KIND_TAG: "batch_inference",
            MODEL_VERSION_TAG: predictor.version,
            INPUT_DATASET_URI_TAG: dataset_uri,
            OUTPUT_DATASET_URI_TAG: stored.uri,
        },
    )
    client.log_metric(run.info.run_id, "rows", len(out))
    client.log_metric(run.info.run_id, "rows_per_s", len(out) / seconds if seconds else 0.0)
    client.log_artifact(run.info.run_id, str(stored.path), artifact_path="predictions")
    client.set_terminated(run.info.run_id)
    log.info("batch inference of %d rows with %s v%s -> %s", len(out), family, predictor.version, stored.uri)
    return {
        "predictions_uri": stored.uri,
        "rows": len(out),
        "model_version": predictor.version,
        "runtime": predictor.runtime,
        "mlflow_run_id": run.info.run_id,
    }
