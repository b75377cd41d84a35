"""The data_preprocess step: ingest, validate, version and profile a table.

Validation runs before anything is written, so a rejected table leaves the dataset
store, the MLflow store and the registry exactly as they were.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import FeaturePipelineError
from automl_tasks.core.labels import LABEL_SPEC_FILE, LabelSpec, normalise_target
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    DAG_RUN_TAG,
    DATASET_URI_TAG,
    DATASET_VERSION_TAG,
    ERROR_TAG,
    FAMILY_TAG,
    FEATURE_PIPELINE_TAG,
    KIND_TAG,
    SOURCE_TAG,
)
from automl_tasks.core.tracking import download_artifact, ensure_experiment, mlflow_client
from automl_tasks.data import (
    BUNDLED,
    DatasetStore,
    profile_table,
    read_table,
    resolve_task_type,
    validate_table,
    write_bundled_csv,
)
from automl_tasks.data.splits import make_splits
from automl_tasks.data.versioning import DATASET_URI_PREFIX, DatasetVersion, parse_dataset_uri
from automl_tasks.estimators.metrics import resolve_metric
from automl_tasks.features.pipeline import FILE_NAME as FEATURE_PIPELINE_FILE
from automl_tasks.features.pipeline import FeaturePipeline, fit_feature_pipeline
from automl_tasks.features.store import load_feature_pipeline, memo_dir, record_feature_pipeline, write_local
from automl_tasks.pipelines.requests import NoCodeRequest

log = logging.getLogger(__name__)


#: PreprocessResult fields that are this host's files: never in XCom, resolved on each host
#: from the URIs (`from_dict`), so a task on another machine finds them in its own workspace
_LOCAL = {"local": True}
PROFILE_ARTIFACT = "data/profile.json"


@dataclass(frozen=True)
class PreprocessResult:
    """Ids and URIs produced by data_preprocess; `to_dict` is its XCom form (no local paths)."""

    dataset_uri: str
    dataset_version: str
    new_version: bool
    task_type: str
    metric: str
    target: str
    rows: int
    columns: int
    family: str
    experiment_id: str
    parent_run_id: str
    #: the feature pipeline version the run fitted or reused ("": none)
    feature_pipeline: str = field(default="", kw_only=True)
    # this host's copies (`from_dict` makes them): the dataset version's Parquet file, the
    # profile's JSON (an artifact of the parent run) and the feature pipeline's JSON ("": none)
    dataset_path: str = field(default="", kw_only=True, metadata=_LOCAL)
    profile_path: str = field(default="", kw_only=True, metadata=_LOCAL)
    feature_pipeline_path: str = field(default="", kw_only=True, metadata=_LOCAL)

    def to_dict(self) -> dict[str, Any]:
        """The XCom form: ids and URIs only (a task on another host resolves its own files)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("local")}

    def profile(self) -> dict[str, Any]:
        """The table's profile (the formatter and the advisor read it)."""
        return json.loads(Path(self.profile_path).read_text())

    @classmethod
    def from_dict(cls, payload: dict[str, Any], ws: Workspace) -> PreprocessResult:
        """The result from its XCom form, with this host's copies of its files in `ws`: the
        dataset version from the DVC remote, the profile from MLflow, the feature pipeline
        from MLflow (each fetched once; a subclass reads its own extra fields too)."""
        ids = {f.name: payload[f.name] for f in fields(cls) if not f.metadata.get("local")}
        features = ids.get("feature_pipeline") or ""
        return cls(
            **ids,
            dataset_path=str(DatasetStore(ws.datasets, ws.dvc_remote).path(*parse_dataset_uri(ids["dataset_uri"]))),
            profile_path=str(_local_profile(ws, ids["parent_run_id"])),
            feature_pipeline_path=str(write_local(ws, load_feature_pipeline(ws, features))) if features else "",
        )


def _profile_file(ws: Workspace, parent_run_id: str) -> Path:
    return ws.runs / "profiles" / parent_run_id / "profile.json"


def _local_profile(ws: Workspace, parent_run_id: str) -> Path:
    """This host's copy of the profile logged on `parent_run_id` (downloaded when missing)."""
    path = _profile_file(ws, parent_run_id)
    return path if path.exists() else download_artifact(ws, parent_run_id, PROFILE_ARTIFACT, path)


@dataclass(frozen=True)
class PipelineRunSpec:
    """What `open_pipeline_run` records on a pipeline's parent MLflow run."""

    family: str
    target: str
    task_type: str
    metric: str
    source: str  # where the table came from (a path, or the drift window's description)
    run_name: str
    dag_run_id: str
    params: dict[str, Any] = field(default_factory=dict)  # logged as run params with target/task/metric
    tags: dict[str, str] = field(default_factory=dict)  # extra run tags (e.g. the retrain's lineage)
    labels: LabelSpec | None = None  # the target's label spec, logged with the run for the task estimator
    #: the table's profile when the pipeline makes its own (texts); None: `profile_table`'s,
    #: whose per-column checks (identifiers, leaks) read every text as a unique category
    profile: dict[str, Any] | None = None
    #: the run's feature pipeline, made before anything is stored (`make_feature_pipeline`);
    #: None: the model reads the raw columns
    features: FeaturePipeline | None = None


@dataclass(frozen=True)
class FeatureRequest:
    """What the form asks of the feature pipeline (issue #15): reuse a recorded version, or
    fit one on the rows the search may see (the train and validation splits of `seed`)."""

    automatic: bool = True
    embed_text: bool = False
    sql_steps: tuple[Any, ...] = ()
    keep: tuple[str, ...] = ()
    reuse: str = ""  # a recorded version to reuse as it is
    seed: int = 0


def make_feature_pipeline(
    ws: Workspace, frame: pd.DataFrame, target: str, task_type: str, request: FeatureRequest
) -> FeaturePipeline:
    """The run's feature pipeline: the recorded version `request.reuse`, checked against the
    table's columns, or a new one fitted on the search's rows."""
    if request.reuse:
        pipeline = load_feature_pipeline(ws, request.reuse)
        missing = [c for c in pipeline.inputs if c not in frame.columns]
        if missing:
            raise FeaturePipelineError(
                f"feature pipeline {request.reuse} needs column(s) {missing}, which the table lacks"
            )
        log.info("feature pipeline %s reused", request.reuse)
        return pipeline
    splits = make_splits(frame[target], task_type, seed=request.seed)
    return fit_feature_pipeline(
        frame,
        target,
        task_type,
        np.concatenate([splits.train, splits.valid]),
        sql_steps=tuple(request.sql_steps),
        keep=request.keep,
        automatic=request.automatic,
        embed_text=request.embed_text,
        seed=request.seed,
    )


def source_path(ws: Workspace, dataset: str) -> Path:
    """A bundled dataset written to the workspace, a stored version's file, or the user's file path."""
    if dataset in BUNDLED:
        return write_bundled_csv(dataset, ws.home / "bundled")
    if dataset.startswith(DATASET_URI_PREFIX):
        return DatasetStore(ws.datasets, ws.dvc_remote).path(*parse_dataset_uri(dataset))
    return Path(dataset).expanduser().resolve()


def preprocess(ws: Workspace, request: NoCodeRequest, *, dag_run_id: str) -> PreprocessResult:
    """Validate then store the table; open the pipeline's parent MLflow run and log the profile."""
    path = source_path(ws, request.dataset)
    frame = read_table(path)
    target = request.target
    task_type = (
        resolve_task_type(request.task_type, frame[target])
        if target in frame.columns and len(frame)
        else ("binary" if request.task_type == "auto" else request.task_type)
    )
    validate_table(frame, source=str(path), target=target, task_type=task_type)
    frame, labels = normalise_target(frame, target, task_type, source=str(path))
    metric = resolve_metric(request.metric, task_type)
    log.info("%s: %d rows x %d columns, task %s, metric %s", path, len(frame), frame.shape[1], task_type, metric.name)

    # fitted before anything is stored: a SQL step that fails leaves no dataset version behind
    features = make_feature_pipeline(
        ws,
        frame,
        target,
        task_type,
        FeatureRequest(
            automatic=request.auto_features,
            embed_text=request.text_embeddings,
            sql_steps=request.sql_steps(),
            keep=request.kept_columns,
            reuse=request.feature_pipeline,
            seed=request.seed,
        ),
    )
    stored = DatasetStore(ws.datasets, ws.dvc_remote).put(request.dataset_name, frame)
    run = PipelineRunSpec(
        family=request.family_name,
        target=target,
        task_type=task_type,
        metric=metric.name,
        source=str(path),
        run_name=f"nocode {dag_run_id}",
        dag_run_id=dag_run_id,
        params={
            "dataset": request.dataset,
            "n_trials": request.n_trials,
            "n_workers": request.n_workers,
            "time_budget_s": request.time_budget_s,
            "auto_features": request.auto_features,
            "text_embeddings": request.text_embeddings,
        },
        labels=labels,
        features=features,
    )
    return open_pipeline_run(ws, frame, stored, run)


def open_pipeline_run(
    ws: Workspace, frame: pd.DataFrame, stored: DatasetVersion, run: PipelineRunSpec
) -> PreprocessResult:
    """Profile a stored dataset version and open the pipeline's parent MLflow run with it as input.

    `run.labels` (the target's LabelSpec) is logged with the run; the task estimator reads it."""
    profile = run.profile if run.profile is not None else profile_table(frame, run.target, run.task_type)
    features = run.features
    if features is not None:
        profile["column_roles"] = list(features.roles)
        profile["excluded_columns"] = list(features.excluded)
        profile["feature_pipeline"] = {"version": features.version, "steps": features.describe()}
    experiment_id = ensure_experiment(ws, run.family)
    client = mlflow_client(ws)
    parent = client.create_run(
        experiment_id,
        run_name=run.run_name,
        tags={
            KIND_TAG: "pipeline",
            DAG_RUN_TAG: run.dag_run_id,
            DATASET_URI_TAG: stored.uri,
            DATASET_VERSION_TAG: stored.version,
            SOURCE_TAG: run.source,
            FAMILY_TAG: run.family,
            **run.tags,
        },
    )
    run_id = parent.info.run_id
    if features is not None:
        record_feature_pipeline(ws, run.family, features, source_run=run_id)
        features.memoise(frame, memo_dir(ws))
        client.set_tag(run_id, FEATURE_PIPELINE_TAG, features.version)
        client.log_text(run_id, features.to_json(), f"data/{FEATURE_PIPELINE_FILE}")
    for key, value in {"target": run.target, "task_type": run.task_type, "metric": run.metric, **run.params}.items():
        client.log_param(run_id, key, str(value))
    profile_path = _profile_file(ws, run_id)
    profile_path.parent.mkdir(parents=True, exist_ok=True)
    profile_path.write_text(json.dumps(profile, indent=2))
    client.log_artifact(run_id, str(profile_path), artifact_path=str(Path(PROFILE_ARTIFACT).parent))
    if run.labels is not None:
        client.log_text(run_id, run.labels.to_json(), LABEL_SPEC_FILE)
    _log_dataset_input(ws, run_id, frame, stored, run.target)
    log.info(
        "dataset %s (%s); MLflow parent run %s",
        stored.uri,
        "new version" if stored.created else "known version",
        run_id,
    )
    return PreprocessResult(
        dataset_uri=stored.uri,
        dataset_version=stored.version,
        new_version=stored.created,
        task_type=run.task_type,
        metric=run.metric,
        target=run.target,
        rows=int(len(frame)),
        columns=int(frame.shape[1]),
        family=run.family,
        experiment_id=experiment_id,
        parent_run_id=run_id,
        feature_pipeline=features.version if features is not None else "",
        dataset_path=str(stored.path),
        profile_path=str(profile_path),
        feature_pipeline_path=str(write_local(ws, features)) if features is not None else "",
    )


def _log_dataset_input(ws: Workspace, run_id: str, frame: pd.DataFrame, stored: DatasetVersion, target: str) -> None:
    """Show the dataset version as the run's input in the MLflow UI."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag

    client = mlflow_client(ws)
    try:
        dataset = mlflow.data.from_pandas(
            frame, source=str(stored.path), name=stored.name, targets=target, digest=stored.version[:10]
        )
        tag = InputTag(key="mlflow.data.context", value="training")
        client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[tag])])
    except Exception as exc:  # the input card is a convenience, never a reason to fail
        log.warning("could not log the dataset input card: %s", exc)


def finish_parent_run(ws: Workspace, run_id: str, *, status: str = "FINISHED", message: str = "") -> None:
    """Close the pipeline's parent run (FAILED with the error message on failure)."""
    client = mlflow_client(ws)
    if message:
        client.set_tag(run_id, ERROR_TAG, message[:4900])
    client.set_terminated(run_id, status=status)
