"""Fill a family's inference log the way the serving endpoint does, with optional feedback labels."""

from __future__ import annotations

import time
import uuid

import pandas as pd

from automl_tasks.core.settings import Workspace
from automl_tasks.estimators.features import feature_frame
from automl_tasks.families.loading import load_predictor
from automl_tasks.monitoring import InferenceLog, InferenceRecord


def log_requests(
    ws: Workspace, family: str, rows: pd.DataFrame, *, target: str = "target", labels: bool, batch: int = 20
) -> int:
    """Predict `rows` with the champion in requests of `batch` rows, log them, send feedback labels."""
    predictor = load_predictor(ws, family)
    log = InferenceLog.for_family(ws.home, family)
    columns = list(predictor.schema.input_columns)
    for start in range(0, len(rows), batch):
        chunk = rows.iloc[start : start + batch]
        predicted, _ = predictor.predict_fn(feature_frame(chunk, predictor.schema))
        request_id, now = uuid.uuid4().hex, time.time()
        instances = chunk[columns].to_dict(orient="records")
        log.append(
            InferenceRecord(request_id, predictor.version, "champion", row, out.item(), now)
            for row, out in zip(instances, predicted, strict=True)
        )
        if labels:
            log.add_labels(request_id, chunk[target].tolist())
    return len(rows)
