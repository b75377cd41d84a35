"""The /predict request model generated from the signature rejects exactly what the
reference validator (`instances_to_frame`) rejects, with the same message, and turns
accepted rows into the same model inputs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from automl_tasks.estimators.features import FeatureSchema
from serving.loader import MAX_INSTANCES, BadRequest, instances_to_frame
from serving.request_model import RequestModel

SCHEMA = FeatureSchema(numeric=("x", "y/z"), categorical=("colour",))
MODEL = RequestModel(SCHEMA)

VALUES = [0, 1, -2, 2.5, 1e300, None, True, False, "1.5", "red", "", [1], {"r": 1}, float("nan"), float("inf")]


def _reference(instances) -> str | None:
    try:
        instances_to_frame(instances, SCHEMA)
    except BadRequest as exc:
        return str(exc)
    return None


def _generated(body: bytes) -> str | None:
    try:
        MODEL.parse(body)
    except BadRequest as exc:
        return str(exc)
    return None


def _random_row(rng: random.Random):
    if rng.random() < 0.05:
        return rng.choice([[1, 2], "row", 3, None])
    row = {c: rng.choice(VALUES) if rng.random() < 0.3 else rng.choice([1.0, 2, None]) for c in SCHEMA.numeric}
    row["colour"] = rng.choice(VALUES) if rng.random() < 0.3 else rng.choice(["red", None, 3])
    if rng.random() < 0.1:
        del row[rng.choice(list(row))]
    if rng.random() < 0.1:
        row[rng.choice(["extra", "X", "y_z"])] = 1
    return row


def test_random_requests_are_judged_alike_with_the_same_message():
    rng = random.Random(7)
    verdicts = {"accepted": 0, "rejected": 0}
    for _ in range(3000):
        instances = [_random_row(rng) for _ in range(rng.choice([1, 1, 2, 3]))]
        body = json.dumps({"instances": instances}).encode()  # NaN/Infinity literals, as a client may send
        expected = _reference(json.loads(body)["instances"])
        assert _generated(body) == expected, instances
        verdicts["rejected" if expected else "accepted"] += 1
    assert min(verdicts.values()) > 300, verdicts  # both paths were exercised


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": "x=1"}',
        b'{"instances": []}',
        b'{"rows": [{"x": 1, "y/z": 2, "colour": "a"}]}',
        b'{"instances": [[1, 2, 3]]}',
        b"[1, 2]",
        json.dumps({"instances": [{"x": 1, "y/z": 2, "colour": "a"}] * (MAX_INSTANCES + 1)}).encode(),
    ],
)
def test_request_level_faults_get_the_reference_message(body):
    data = json.loads(body)
    assert _generated(body) == _reference(data.get("instances") if isinstance(data, dict) else None) is not None


def test_a_body_that_is_not_json_is_refused_as_such():
    assert _generated(b"{instances: oops").startswith("request body is not valid JSON")


def test_accepted_rows_become_the_reference_model_frame():
    instances = [
        {"x": 1, "y/z": None, "colour": None},
        {"x": 2.5, "y/z": 3, "colour": "red"},
        {"x": -1, "y/z": 0, "colour": 4},
    ]
    rows, features = MODEL.parse(json.dumps({"instances": instances}).encode())
    expected = instances_to_frame(instances, SCHEMA)
    assert rows == instances  # what the inference log stores
    got = features.frame(SCHEMA)
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_array_equal(got[["x", "y_z"]].to_numpy(), expected[["x", "y_z"]].to_numpy())
    assert got["colour"].tolist() == expected["colour"].tolist() == ["missing", "red", "4"]


def test_openapi_schema_is_typed_by_column():
    schema = MODEL.json_schema()
    instance = next(iter(schema["$defs"].values()))
    assert instance["required"] == ["x", "y/z", "colour"] and instance["additionalProperties"] is False
    assert {"type": "number"} in instance["properties"]["x"]["anyOf"]
    assert schema["properties"]["instances"]["maxItems"] == MAX_INSTANCES
