"""Load a registered model version for prediction: ONNX Runtime first, native fallback.

A version registered with `RUNTIME_TAG=native` (its export failed; see
`automl_tasks.deploy.runtime`) is loaded natively without trying ONNX; one placed on
another engine (`RUNTIME_TAG=openvino`, `tvm`, ...) is compiled for it. Labels are
answered in the user's type (the version's `LabelSpec`).

Used by the BentoML service and by batch inference, so both answer with the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from automl_tasks.core.errors import UserError
from automl_tasks.core.labels import LabelSpec, load_label_spec
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    DEPLOY_ENGINE_TAG,
    DEPLOY_TARGET_TAG,
    EXPORT_FALLBACK_TAG,
    MODALITY_TAG,
    RUNTIME_TAG,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.deploy.runtime import NATIVE_RUNTIME, ONNX_RUNTIME, NativeModel
from automl_tasks.estimators.features import FeatureSchema
from automl_tasks.families.artifacts import ONNX_ARTIFACT, feature_schema_of

log = logging.getLogger(__name__)

#: what a text version reads: one text column (`deploy.text_model.TEXT_COLUMN`)
TEXT_SCHEMA = FeatureSchema((), (), ("text",))


@dataclass(frozen=True)
class Predictor:
    """A loaded version: `predict_fn(model frame) -> (labels, proba | None)`."""

    family: str
    version: str
    run_id: str
    runtime: str  # the engine that answers: "onnxruntime", "openvino", "tvm", ... or "native"
    schema: FeatureSchema  # the request columns, from the MLflow signature
    predict_fn: Callable[[pd.DataFrame], tuple[Any, Any]]
    #: the ONNX model behind `predict_fn` (None when native), for callers that build
    #: ONNX inputs themselves (the serving fast path); `labels` decodes its raw labels
    onnx_model: Any = None
    labels: LabelSpec | None = None


_NUMERIC_TYPES = {"double", "float", "long", "integer", "boolean"}


def schema_from_signature(signature: Any, names: FeatureSchema) -> FeatureSchema:
    """The request schema from a version's MLflow signature.

    The signature lists the model's input columns and their types; `names` (the feature
    schema logged beside the model) maps them back to the column names users send.
    A disagreement between the two means a broken registration and is refused.
    """
    if signature is None or signature.inputs is None:
        raise UserError("the model version has no MLflow signature; re-register it with one")
    original = {model: column for column, model in names.model_names.items()}
    numeric, categorical = [], []
    for spec in signature.inputs.inputs:
        if spec.name not in original:
            raise UserError(f"signature input {spec.name!r} is not a column of the logged feature schema")
        kind = getattr(spec.type, "name", str(spec.type))
        (numeric if kind in _NUMERIC_TYPES else categorical).append(original[spec.name])
    derived = FeatureSchema(tuple(numeric), tuple(categorical))
    if derived != names:
        raise UserError(f"MLflow signature {derived} disagrees with the logged feature schema {names}")
    return names  # equal to `derived`, and it carries the feature pipeline


def resolve_version(ws: Workspace, family: str, alias_or_version: str) -> Any:
    """The ModelVersion for an alias (`champion`) or a version number (`3`)."""
    client = mlflow_client(ws)
    if alias_or_version.isdigit():
        return client.get_model_version(family, alias_or_version)
    return client.get_model_version_by_alias(family, alias_or_version)


def load_predictor(ws: Workspace, family: str, alias_or_version: str = "champion") -> Predictor:
    """The version behind `family@alias` (or `family/version`), on the engine it was placed on."""
    import mlflow

    version = resolve_version(ws, family, alias_or_version)
    if is_text_version(version.tags):
        text = load_text_version(ws, version)
        log.info("loaded %s v%s (%s): a text model, on %s", family, version.version, alias_or_version, text.engine)
        return Predictor(
            family, str(version.version), version.run_id, text.engine, TEXT_SCHEMA, text.classify, None, text.labels
        )
    info = mlflow.models.get_model_info(f"models:/{family}/{version.version}")
    schema = schema_from_signature(info.signature, feature_schema_of(version.run_id))
    predict_fn, runtime, onnx_model = None, NATIVE_RUNTIME, None
    fallback = version.tags.get(EXPORT_FALLBACK_TAG)
    placed = version.tags.get(RUNTIME_TAG, ONNX_RUNTIME)
    if placed != NATIVE_RUNTIME:
        try:
            onnx_path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=ONNX_ARTIFACT)
            onnx_model = _onnx_model(ws, version, onnx_path, schema, placed)
            predict_fn, runtime = onnx_model.run, onnx_model.engine
        except Exception as exc:
            log.warning("ONNX model of %s v%s unavailable (%s); using the native model", family, version.version, exc)
    else:
        log.info("%s v%s is registered for the native runtime: %s", family, version.version, fallback)
    if predict_fn is None:
        predict_fn = NativeModel(mlflow.sklearn.load_model(f"models:/{family}/{version.version}")).run
    labels = load_label_spec(version.run_id)
    if labels is not None:
        predict_fn = _answer_in_user_type(predict_fn, labels)
    log.info("loaded %s v%s (%s) with %s", family, version.version, alias_or_version, runtime)
    return Predictor(family, str(version.version), version.run_id, runtime, schema, predict_fn, onnx_model, labels)


def _onnx_model(ws: Workspace, version: Any, path: str, schema: FeatureSchema, engine: str) -> Any:
    """The version's ONNX model on the engine it was placed on (`RUNTIME_TAG`), with its
    target's options; on ONNX Runtime when that engine cannot build it here (e.g. a
    TensorRT version on a machine without a GPU), which the log says."""
    from automl_tasks.deploy.onnx_model import OnnxModel

    if engine == ONNX_RUNTIME:
        return OnnxModel(path, schema)
    try:
        return OnnxModel(path, schema, engine=engine, options=_target_options(ws, version, engine))
    except Exception as exc:
        log.warning(
            "%s v%s was placed on %s, which cannot serve it here (%s: %s); serving it with ONNX Runtime",
            version.name,
            version.version,
            engine,
            type(exc).__name__,
            exc,
        )
        return OnnxModel(path, schema)


def _target_options(ws: Workspace, version: Any, engine: str) -> Any:
    """The engine options of the target the version was placed on (defaults when the
    workspace no longer defines that target, or defines it on another engine)."""
    from automl_tasks.core.errors import ConfigurationError
    from automl_tasks.deploy.targets import get_target

    name = version.tags.get(DEPLOY_TARGET_TAG)
    try:
        target = get_target(name, ws.home) if name else None
    except ConfigurationError as exc:
        log.warning("%s v%s: target %r: %s; default %s options", version.name, version.version, name, exc, engine)
        return None
    return target.options if target is not None and target.serves_with(engine) else None


def _answer_in_user_type(predict_fn: Callable[[pd.DataFrame], tuple[Any, Any]], labels: LabelSpec):
    """Wrap `predict_fn` so its labels come back in the type the user's target had."""

    def predict(frame: pd.DataFrame) -> tuple[Any, Any]:
        predicted, proba = predict_fn(frame)
        return labels.decode(predicted), proba

    return predict


def is_text_version(tags: dict[str, str]) -> bool:
    """Whether a version classifies texts (a large_model_adaptation family's) rather than table rows."""
    return tags.get(MODALITY_TAG) == "text"


def load_text_version(ws: Workspace, version: Any) -> Any:  # deploy.text_model.TextOnnxModel
    """A text family's version: its ONNX file (tag `loopml.onnx_uri`) and its run's `serving/`
    folder (tokenizer, classes, token limit, label spec), fetched once into a temporary folder,
    on the engine the compile step chose for its target (`loopml.deploy.engine`)."""
    import tempfile
    from pathlib import Path

    import mlflow

    from automl_tasks.core.tags import ONNX_URI_TAG
    from automl_tasks.deploy.text_model import SERVING_ARTIFACT, load_text_onnx

    mlflow_client(ws)
    folder = Path(tempfile.mkdtemp(prefix=f"loopml-{version.name}-v{version.version}-"))
    onnx_path = mlflow.artifacts.download_artifacts(version.tags[ONNX_URI_TAG], dst_path=str(folder))
    bundle = mlflow.artifacts.download_artifacts(f"runs:/{version.run_id}/{SERVING_ARTIFACT}", dst_path=str(folder))
    engine = version.tags.get(DEPLOY_ENGINE_TAG, ONNX_RUNTIME)
    options = _target_options(ws, version, engine) if engine != ONNX_RUNTIME else None
    return load_text_onnx(Path(onnx_path), Path(bundle), engine=engine, options=options)
