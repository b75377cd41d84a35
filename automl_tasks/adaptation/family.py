"""A text model family in the MLflow registry: the base model as its root version, and every
model derived from it (adapted, distilled, pruned, quantised) as a version naming its parent.

A version's source is what its derivation made: the base model's folder, an adapter folder
(`artifacts`), a student's folder, or an int8 ONNX file. Each version's run also holds its
ONNX export (tag `loopml.onnx_uri`), which the compile step and serving read.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from automl_tasks.core.labels import LABEL_SPEC_FILE
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    BASE_DIGEST_TAG,
    DERIVATION_TAG,
    FAMILY_TAG,
    KIND_TAG,
    ONNX_URI_TAG,
    PARENT_VERSION_TAG,
    RUN_ID_TAG,
)
from automl_tasks.core.tracking import mlflow_client

log = logging.getLogger(__name__)

BASE = "base"
ONNX_ARTIFACT = "onnx/model.onnx"


@dataclass(frozen=True)
class RunContext:
    """Where a pipeline's versions are logged: the family, its experiment and the pipeline's run."""

    family: str
    experiment_id: str
    parent_run_id: str


@dataclass(frozen=True)
class FamilyVersion:
    """A registered version and what the later steps need of it (JSON-able for XCom)."""

    version: str
    derivation: str
    parent_version: str
    run_id: str
    onnx_uri: str  # "" for the base model (it has no head to export)
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ensure_registered_model(client: Any, family: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(family)
    except MlflowException:
        try:
            client.create_registered_model(family, tags={FAMILY_TAG: family})
        except MlflowException:  # created by another task meanwhile
            client.get_registered_model(family)


def register_version(
    ws: Workspace,
    context: RunContext,
    *,
    source: Path,
    derivation: str,
    parent_version: str = "",
    onnx: Path | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    extras: dict[str, Path] | None = None,
    label_spec: str = "",
) -> FamilyVersion:
    """Log `source` (a folder or a file) and the ONNX export in a child run of the pipeline's
    run, and register the source as a new version of the family with its lineage tags.
    `extras` are more folders for the run (artifact path -> local folder), e.g. `serving/`;
    `label_spec` (a LabelSpec's JSON) is logged where every version's label spec is read."""
    client = mlflow_client(ws)
    metrics = {k: float(v) for k, v in (metrics or {}).items()}
    run_tags = {
        "mlflow.parentRunId": context.parent_run_id,
        KIND_TAG: "derived_model",
        DERIVATION_TAG: derivation,
        **(tags or {}),
    }
    run = client.create_run(context.experiment_id, run_name=f"{derivation} model", tags=run_tags)
    run_id = run.info.run_id
    if source.is_dir():
        client.log_artifacts(run_id, str(source), "model")
    else:
        client.log_artifact(run_id, str(source), "model")
    if label_spec:
        client.log_text(run_id, label_spec, LABEL_SPEC_FILE)
    for artifact_path, folder in (extras or {}).items():
        client.log_artifacts(run_id, str(folder), artifact_path)
    onnx_uri = ""
    if onnx is not None:
        client.log_artifact(run_id, str(onnx), "onnx")
        onnx_uri = f"runs:/{run_id}/onnx/{onnx.name}"
    for key, value in (params or {}).items():
        client.log_param(run_id, key, str(value)[:500])
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id)
    _ensure_registered_model(client, context.family)
    version_tags = {
        DERIVATION_TAG: derivation,
        RUN_ID_TAG: run_id,
        **({PARENT_VERSION_TAG: parent_version} if parent_version else {}),
        **({ONNX_URI_TAG: onnx_uri} if onnx_uri else {}),
        **(tags or {}),
        **{key: f"{value:.6g}" for key, value in metrics.items()},
    }
    model_source = f"runs:/{run_id}/model" if source.is_dir() else f"runs:/{run_id}/model/{source.name}"
    created = client.create_model_version(context.family, source=model_source, run_id=run_id, tags=version_tags)
    log.info(
        "family %s v%s: %s%s",
        context.family,
        created.version,
        derivation,
        f" of v{parent_version}" if parent_version else "",
    )
    return FamilyVersion(str(created.version), derivation, parent_version, run_id, onnx_uri, metrics)


def register_base(ws: Workspace, context: RunContext, folder: Path, digest: str) -> str:
    """The family's root version for this base model: the existing one, or a new one holding
    the model's folder (so the family stays loadable if the package or folder goes away)."""
    client = mlflow_client(ws)
    _ensure_registered_model(client, context.family)
    for version in client.search_model_versions(f"name='{context.family}'"):
        if version.tags.get(DERIVATION_TAG) == BASE and version.tags.get(BASE_DIGEST_TAG) == digest:
            log.info("family %s: base model already registered as v%s", context.family, version.version)
            return str(version.version)
    registered = register_version(
        ws, context, source=folder, derivation=BASE, tags={BASE_DIGEST_TAG: digest, "base_model": str(folder)}
    )
    return registered.version


def family_versions(ws: Workspace, family: str) -> list[dict[str, Any]]:
    """Every version of the family with its derivation and parent: the lineage the UI draws."""
    client = mlflow_client(ws)
    aliases: dict[str, list[str]] = {}
    for alias, number in client.get_registered_model(family).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for version in client.search_model_versions(f"name='{family}'"):
        rows.append(
            {
                "version": str(version.version),
                "derivation": version.tags.get(DERIVATION_TAG, ""),
                "parent_version": version.tags.get(PARENT_VERSION_TAG, ""),
                "aliases": sorted(aliases.get(str(version.version), [])),
            }
        )
    return sorted(rows, key=lambda r: int(r["version"]))


def download_uri(ws: Workspace, uri: str, folder: Path) -> Path:
    """An artifact (a file or folder) by its URI, e.g. a version's `loopml.onnx_uri`, fetched into `folder`."""
    import mlflow

    mlflow_client(ws)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(folder)))


def download_artifact(ws: Workspace, run_id: str, artifact_path: str, folder: Path) -> Path:
    """A file or folder of a version's run, fetched into `folder`."""
    return download_uri(ws, f"runs:/{run_id}/{artifact_path}", folder)


def download_model(ws: Workspace, run_id: str, folder: Path) -> Path:
    """The version's source folder (`model/` of its run)."""
    return download_artifact(ws, run_id, "model", folder)
