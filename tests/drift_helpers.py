"""Fill a family's inference log the way the serving endpoint does, with optional feedback labels."""

from __future__ import annotations

import time
import uuid

import pandas as pd

from automl_tasks.core.settings import Workspace
from automl_tasks.estimators.features import feature_frame
from automl_tasks.families.loading import load_predictor
from automl_tasks.monitoring import InferenceLog, InferenceRecord, open_inference_log


def log_requests(
    ws: Workspace, family: str, rows: pd.DataFrame, *, target: str = "target", labels: bool, batch: int = 20
) -> int:
    """Predict `rows` with the champion in requests of `batch` rows, log them, send feedback labels."""
    predictor = load_predictor(ws, family)
    log = open_inference_log(ws, family)
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


def check_inference_log(log: InferenceLog) -> None:
    """What every inference-log backend does (SQLite and PostgreSQL): records in order,
    feedback labels joined to their rows and replaced when sent again, windows by time,
    clear errors for an unknown request or a wrong number of labels."""
    import pytest

    log.append(InferenceRecord("r1", "1", "champion", {"x": i}, i % 2, 10.0 + i) for i in range(3))
    log.append([InferenceRecord("r2", "1", "champion", {"x": 9}, 1, 20.0)])
    assert log.add_labels("r1", [1, 0, 1]) == 3
    log.add_labels("r1", [0, 0, 1])  # sent again: replaces
    frame = log.read()
    assert frame["x"].tolist() == [0, 1, 2, 9] and log.count() == 4
    assert frame["_label"].tolist()[:3] == [0, 0, 1] and pd.isna(frame["_label"].iloc[3])
    assert log.read(since=15.0)["_label"].isna().all() and len(log.read(since=15.0)) == 1
    with pytest.raises(ValueError, match="no logged request has request_id 'nope'"):
        log.add_labels("nope", [1])
    with pytest.raises(ValueError, match="request r2 had 1 rows; got 2 labels"):
        log.add_labels("r2", [1, 0])
