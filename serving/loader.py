"""A family's model as the service uses it: request validation, answers, explanations."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import FeaturePipelineError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import DATASET_URI_TAG
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.families.artifacts import feature_schema_of
from automl_tasks.families.loading import load_predictor

log = logging.getLogger(__name__)

MAX_INSTANCES = 10_000


class BadRequest(ValueError):
    """A request the client must fix; the message says what is wrong."""


@dataclass
class ServedModel:
    """One registered version, ready to predict on JSON instances."""

    ws: Workspace
    family: str
    version: str
    alias: str
    runtime: str  # the engine answering: "onnxruntime", "openvino", "tvm", ... or "native"
    schema: FeatureSchema
    predict_fn: Any  # model frame -> (labels, proba | None)
    onnx_model: Any = None  # the OnnxModel behind predict_fn, if any (see model_store.Predictor)
    labels: Any = None  # its LabelSpec: raw ONNX labels -> the user's type
    _explainer: Any = None
    _explainer_lock: threading.Lock = field(default_factory=threading.Lock)

    def to_frame(self, instances: Any) -> pd.DataFrame:
        return instances_to_frame(instances, self.schema)

    inline_rows: int = 64  # calls this small run on the event loop (a thread hop costs more)

    def answer(self, labels: Any, proba: Any) -> dict[str, Any]:
        return answer_payload(self.family, self.version, self.alias, self.runtime, labels, proba)

    def notes(self, features: Any) -> list[str]:
        return []

    def explainer(self):  # -> serving.explain.Explainer
        """SHAP explainer over the native model, background from the family's evaluation data.

        Built once; a caller arriving while it is being built waits for it."""
        with self._explainer_lock:
            return self._build_explainer()

    def _build_explainer(self):
        if self._explainer is None:
            import mlflow

            from automl_tasks.families.promotion import evaluation_data_path
            from serving.explain import Explainer

            native = mlflow.sklearn.load_model(f"models:/{self.family}/{self.version}")
            path = evaluation_data_path(self.ws, self.family)
            if path is None:
                raise BadRequest(f"family {self.family!r} has no evaluation data to explain against")
            background = feature_frame(pd.read_parquet(path), self.schema)
            self._explainer = Explainer(native, self.schema, background)
        return self._explainer


def answer_payload(family: str, version: str, alias: str, runtime: str, labels: Any, proba: Any) -> dict[str, Any]:
    """The /predict answer of any served version: labels, probabilities, who answered."""
    out: dict[str, Any] = {
        "predictions": [_plain(v) for v in labels],
        "model": {"family": family, "version": version, "alias": alias, "runtime": runtime},
    }
    if proba is not None:
        out["probabilities"] = np.round(np.asarray(proba, dtype=float), 6).tolist()
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def instances_to_frame(instances: Any, schema: FeatureSchema) -> pd.DataFrame:
    """Check JSON instances against the feature schema; raise BadRequest naming the fault."""
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list of objects, one per row")
    if len(instances) > MAX_INSTANCES:
        raise BadRequest(f"at most {MAX_INSTANCES} instances per request; got {len(instances)}")
    raw = schema.raw  # the columns a person sends (a feature pipeline derives the model's)
    expected = set(raw.columns)
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            raise BadRequest(f"instances[{i}] must be an object of column: value; got {type(row).__name__}")
        missing = sorted(expected - set(row))
        unknown = sorted(set(row) - expected - set(schema.ignored_inputs))
        if missing:
            raise BadRequest(f"instances[{i}] is missing columns {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        if unknown:
            raise BadRequest(f"instances[{i}] has unknown columns {unknown[:10]}; expected {sorted(expected)[:10]} ...")
        for column in raw.numeric:
            value = row[column]
            # a boolean is 1 or 0, as the training table's boolean columns were read
            if value is None or isinstance(value, bool):
                continue
            if not isinstance(value, (int, float)):
                raise BadRequest(f"instances[{i}].{column} must be a number, a boolean or null; got {value!r}")
            if not math.isfinite(value):
                raise BadRequest(f"instances[{i}].{column} must be finite; got {value!r}")
        for column in raw.categorical:
            value = row[column]
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise BadRequest(f"instances[{i}].{column} must be a string, number or null; got {value!r}")
    return derived_frame(pd.DataFrame(instances, columns=list(raw.columns)), schema)


def derived_frame(rows: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """`feature_frame` of valid request rows; a feature step that cannot read them (a SQL
    step meeting a value it cannot cast, say) is the request's fault: BadRequest, not a 500."""
    try:
        return feature_frame(rows, schema)
    except (FeaturePipelineError, ValueError, TypeError) as exc:
        if schema.derive is None:
            raise
        raise BadRequest(f"the feature pipeline cannot read these rows: {exc}") from None


def load_served_model(ws: Workspace, family: str, alias: str = "champion") -> ServedModel:
    """The version behind `family@alias`, run by ONNX Runtime when its ONNX file exists."""
    p = load_predictor(ws, family, alias)
    if p.schema.derive is not None:
        p.schema.derive.load_models()
    return ServedModel(
        ws, family, p.version, alias, p.runtime, p.schema, p.predict_fn, onnx_model=p.onnx_model, labels=p.labels
    )


def sample_instances(ws: Workspace, family: str, n: int = 1, alias: str = "champion") -> list[dict[str, Any]]:
    """`n` rows of the dataset version the `family@alias` model was trained on, as JSON instances."""
    from automl_tasks.data import DatasetStore

    version = mlflow_client(ws).get_model_version_by_alias(family, alias)
    uri = version.tags.get(DATASET_URI_TAG)
    if not uri:
        raise ValueError(f"{family} v{version.version} has no loopml.dataset_uri tag")
    frame = DatasetStore(ws.datasets, ws.dvc_remote).read(uri).head(n)
    frame = frame[list(feature_schema_of(version.run_id).input_columns)]
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else _plain(v)) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
