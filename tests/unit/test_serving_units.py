"""Request validation and adaptive batching of the serving layer, without a server."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pandas as pd
import pytest

from automl_tasks.estimators.features import FeatureSchema
from serving.batching import AdaptiveBatcher
from serving.loader import MAX_INSTANCES, BadRequest, instances_to_frame

SCHEMA = FeatureSchema(numeric=("x", "y/z"), categorical=("colour",))


def test_valid_instances_become_the_model_frame():
    frame = instances_to_frame([{"x": 1, "y/z": None, "colour": None}, {"x": 2.5, "y/z": 3, "colour": "red"}], SCHEMA)
    assert list(frame.columns) == ["x", "y_z", "colour"]
    assert math.isnan(frame["y_z"][0]) and frame["colour"].tolist() == ["missing", "red"]


def test_a_boolean_in_a_numeric_column_is_one_or_zero_as_in_the_training_table():
    """A table's true/false column is a numeric feature (FeatureSchema.infer): a client that
    sends the row's own JSON booleans is answered, not refused."""
    frame = instances_to_frame(
        [{"x": True, "y/z": False, "colour": "red"}, {"x": 2.5, "y/z": None, "colour": "a"}], SCHEMA
    )
    assert frame["x"].tolist() == [1.0, 2.5] and frame["y_z"][0] == 0.0 and math.isnan(frame["y_z"][1])


@pytest.mark.parametrize(
    ("instances", "fragment"),
    [
        ("x=1", "non-empty list"),
        ([], "non-empty list"),
        ([[1, 2, 3]], "instances[0] must be an object"),
        ([{"x": 1, "colour": "red"}], "missing columns ['y/z']"),
        ([{"x": 1, "y/z": 2, "colour": "red", "extra": 0}], "unknown columns ['extra']"),
        ([{"x": "one", "y/z": 2, "colour": "red"}], "instances[0].x must be a number, a boolean or null"),
        ([{"x": float("nan"), "y/z": 2, "colour": "red"}], "must be finite"),
        ([{"x": float("inf"), "y/z": 2, "colour": "red"}], "must be finite"),
        ([{"x": 1, "y/z": 2, "colour": {"r": 1}}], "instances[0].colour must be a string"),
    ],
)
def test_invalid_instances_name_the_fault(instances, fragment):
    with pytest.raises(BadRequest) as info:
        instances_to_frame(instances, SCHEMA)
    assert fragment in str(info.value)


def test_too_many_instances():
    with pytest.raises(BadRequest, match=f"at most {MAX_INSTANCES}"):
        instances_to_frame([{"x": 1, "y/z": 1, "colour": "a"}] * (MAX_INSTANCES + 1), SCHEMA)


def test_batcher_answers_each_request_with_its_own_rows_and_batches_under_load():
    calls = []

    def run(frame: pd.DataFrame):
        calls.append(len(frame))
        return frame["v"].to_numpy() * 10, np.stack([frame["v"].to_numpy()] * 2, axis=1)

    async def scenario():
        batcher = AdaptiveBatcher(run, max_rows=100)
        frames = [pd.DataFrame({"v": [i, i + 0.5]}) for i in range(20)]
        results = await asyncio.gather(*(batcher.infer(f) for f in frames))
        return frames, results, batcher

    frames, results, batcher = asyncio.run(scenario())
    for frame, (labels, proba) in zip(frames, results, strict=True):
        assert labels.tolist() == (frame["v"] * 10).tolist()
        assert proba.shape == (2, 2)
    assert sum(calls) == 40 and batcher.rows == 40
    assert len(calls) < 20, "concurrent requests shared inference calls"
    assert max(calls) <= 100


def test_batcher_passes_model_errors_to_every_waiting_request():
    def run(frame):
        raise RuntimeError("model broke")

    async def scenario():
        batcher = AdaptiveBatcher(run)
        return await asyncio.gather(
            *(batcher.infer(pd.DataFrame({"v": [1]})) for _ in range(3)), return_exceptions=True
        )

    results = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in results)


def test_request_schema_comes_from_the_signature_and_must_agree():
    from mlflow.models import infer_signature

    from automl_tasks.core.errors import LoopmlError
    from automl_tasks.estimators.features import feature_frame
    from automl_tasks.families.loading import schema_from_signature

    raw = pd.DataFrame({"x": [1.0], "y/z": [2.0], "colour": ["red"]})
    signature = infer_signature(feature_frame(raw, SCHEMA), np.array([0]))
    assert schema_from_signature(signature, SCHEMA) == SCHEMA
    other = FeatureSchema(numeric=("x",), categorical=("y/z", "colour"))
    with pytest.raises(LoopmlError, match="disagrees"):
        schema_from_signature(signature, other)
    with pytest.raises(LoopmlError, match="no MLflow signature"):
        schema_from_signature(None, SCHEMA)


def test_group_log_commits_concurrent_requests_together_before_they_return(tmp_path):
    from automl_tasks.monitoring import InferenceLog, InferenceRecord
    from serving.log_writer import GroupLog

    log = InferenceLog(tmp_path / "log.sqlite", "fam")
    group = GroupLog(log, checkpoint_s=0.05)

    async def request(i: int) -> int:
        await group.append([InferenceRecord(f"r{i}", "1", "champion", {"x": i}, 0, 1.0)] * 2)
        return log.count()  # committed before the request goes on to answer

    async def scenario():
        return await asyncio.gather(*(request(i) for i in range(10)))

    seen = asyncio.run(scenario())
    group.close()
    assert seen == [20] * 10 and group.commits == 1 and group.requests == 10
    assert sorted(set(log.read()["_request_id"])) == sorted(f"r{i}" for i in range(10))


def test_the_max_batch_rows_setting_reaches_the_batcher(monkeypatch):
    from types import SimpleNamespace

    from serving.service import _LeanPath
    from serving.settings import ServingSettings

    monkeypatch.setenv("LOOPML_FAMILY", "bc")
    monkeypatch.setenv("LOOPML_MAX_BATCH_ROWS", "7")
    settings = ServingSettings.from_env()
    model = SimpleNamespace(
        schema=FeatureSchema(("a",), ()),
        predict_fn=lambda frame: (frame, None),
        onnx_model=None,
        labels=None,
        inline_rows=64,
    )
    assert _LeanPath(model, settings.max_batch_rows).batcher.max_rows == 7
