"""The /predict request model of a served version, generated from its MLflow signature.

`RequestModel(schema)` validates a JSON body in one pass (pydantic-core parses and checks
the bytes together: strict numbers, finite, no missing or unknown columns, 1 to
`MAX_INSTANCES` rows) and turns the rows into model input arrays in one step. Its JSON
schema is the typed OpenAPI of /predict. A rejected body gets exactly the message of
`serving.loader.instances_to_frame`, the reference validator (also used by /explain):
the rare error path re-runs it to name the fault, so the two cannot drift apart
(`tests/unit/test_request_model.py` checks they reject the same requests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from operator import itemgetter
from typing import Annotated, Any, NotRequired

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from automl_tasks.estimators.features import FeatureSchema, feature_frame
from serving.loader import MAX_INSTANCES, BadRequest, derived_frame, instances_to_frame

#: a boolean is 1 or 0 (`instances_to_frame`: as the training table's boolean columns were read)
_NUMBER = Annotated[float, Field(strict=True, allow_inf_nan=False)] | bool | None
_CATEGORY = str | int | float | bool | None


@dataclass
class Features:
    """Validated rows as arrays: numbers [N, numeric] float64, categories [N, categorical] object."""

    numeric: np.ndarray
    categorical: np.ndarray | None

    def __len__(self) -> int:
        return len(self.numeric)

    @staticmethod
    def concat(parts: list[Features]) -> Features:
        if len(parts) == 1:
            return parts[0]
        categorical = None if parts[0].categorical is None else np.concatenate([p.categorical for p in parts])
        return Features(np.concatenate([p.numeric for p in parts]), categorical)

    def frame(self, schema: FeatureSchema) -> pd.DataFrame:
        """The model frame `feature_frame` builds from the same rows (for native models)."""
        model = schema.without_pipeline  # the arrays hold the model's columns already
        raw = pd.DataFrame(self.numeric, columns=list(model.numeric))
        if model.categorical:
            raw = pd.concat([raw, pd.DataFrame(self.categorical, columns=list(model.categorical))], axis=1)
        return feature_frame(raw, model)


class RequestModel:
    """Validation and conversion of /predict bodies for one feature schema."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        raw = schema.raw  # what a request carries: the raw columns when a feature pipeline derives the model's
        fields = {c: _NUMBER for c in raw.numeric} | {c: _CATEGORY for c in raw.categorical}
        fields |= {c: NotRequired[Any] for c in schema.ignored_inputs}
        row = TypedDict("Instance", fields)  # column names need not be identifiers
        row.__pydantic_config__ = ConfigDict(extra="forbid", strict=True)
        body = TypedDict(  # noqa: UP013 (functional form: `row` is local, annotations are lazy here)
            "PredictRequest", {"instances": Annotated[list[row], Field(min_length=1, max_length=MAX_INSTANCES)]}
        )
        self.adapter = TypeAdapter(body)
        self._numeric = _getter(schema.numeric)
        self._categorical = _getter(schema.categorical)

    def json_schema(self) -> dict[str, Any]:
        return self.adapter.json_schema()

    def parse(self, body: bytes) -> tuple[list[dict[str, Any]], Features]:
        """(rows, features) of a valid body; BadRequest naming the fault otherwise."""
        try:
            rows = self.adapter.validate_json(body)["instances"]
        except ValidationError as exc:
            raise BadRequest(self._message(body, exc)) from None
        return rows, self.features(rows)

    def features(self, rows: list[dict[str, Any]]) -> Features:
        if self.schema.derive is not None and not self.schema.derive.passthrough:
            return self._derived_features(rows)
        n = len(rows)
        numeric = np.array(list(map(self._numeric, rows)), dtype=np.float64).reshape(n, len(self.schema.numeric))
        categorical = None
        if self.schema.categorical:
            raw = pd.DataFrame(list(map(self._categorical, rows)), columns=list(self.schema.categorical))
            categorical = feature_frame(raw, FeatureSchema((), self.schema.categorical)).to_numpy(dtype=object)
        return Features(numeric, categorical)

    def _derived_features(self, rows: list[dict[str, Any]]) -> Features:
        """The feature pipeline's model columns of the raw rows (the same code as training)."""
        schema = self.schema
        frame = derived_frame(pd.DataFrame(rows, columns=list(schema.input_columns)), schema)
        numeric = frame[list(schema.model_numeric)].to_numpy(dtype=np.float64)
        categorical = frame[list(schema.model_categorical)].to_numpy(dtype=object) if schema.categorical else None
        return Features(numeric, categorical)

    def _message(self, body: bytes, exc: ValidationError) -> str:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            return f"request body is not valid JSON: {err}"
        instances = data.get("instances") if isinstance(data, dict) else None
        try:
            instances_to_frame(instances, self.schema)
        except BadRequest as reference:
            return str(reference)
        first = exc.errors(include_url=False)[0]  # the reference validator found nothing: say what pydantic saw
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"


def _getter(columns: tuple[str, ...]):
    """row -> tuple of its values in `columns` order (C-speed, also for 0 or 1 column)."""
    if not columns:
        return lambda row: ()
    if len(columns) == 1:
        one = itemgetter(columns[0])
        return lambda row: (one(row),)
    return itemgetter(*columns)


def served_schema(model: Any) -> FeatureSchema:
    """The schema a loaded version's (`ServedModel`, `Predictor`) request arrays are built
    for: its ONNX model's when it has one (that graph computes some derived columns
    itself, see `FeatureSchema.graph_fed`), else the version's."""
    return model.onnx_model.schema if model.onnx_model is not None else model.schema


def features_runner(predict_fn: Any, schema: FeatureSchema, onnx_model: Any = None, labels: Any = None):
    """`Features -> (labels, proba | None)` for a loaded model; `schema`: `served_schema`'s.

    An ONNX Runtime model (`onnx_model`) gets its inputs straight from the arrays (one
    transposed copy in the input type the file declares, float32 or float64; no DataFrame),
    and its raw labels are decoded by `labels` (the version's LabelSpec); any other model
    gets the same frame `feature_frame` builds, through `predict_fn`, which decodes itself.
    """
    if onnx_model is not None:
        numeric_names, categorical_names = onnx_model.schema.model_numeric, onnx_model.schema.model_categorical
        dtype = onnx_model.numeric_dtype

        def run_onnx(features: Features):
            columns = np.ascontiguousarray(features.numeric.T, dtype=dtype)
            feeds = {name: columns[i].reshape(-1, 1) for i, name in enumerate(numeric_names)}
            for j, name in enumerate(categorical_names):
                feeds[name] = features.categorical[:, j].astype(str).reshape(-1, 1)
            predicted, proba = onnx_model.run_feeds(feeds)
            return (labels.decode(predicted) if labels is not None else predicted), proba

        return run_onnx
    return lambda features: predict_fn(features.frame(schema))
