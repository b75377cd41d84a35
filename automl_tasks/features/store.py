"""Feature pipeline versions: stored in MLflow, read back by version, cached on disk.

Each fitted pipeline is one run of the experiment `FEATURE_PIPELINES_EXPERIMENT` holding
`feature_pipeline.json`, tagged with its family and its version (the content hash), so a
registered model version's `loopml.feature_pipeline` tag leads to exactly what it was trained
with (lineage: dataset version -> feature pipeline version -> model version). Recording the
same pipeline twice for a family returns the first record. The search workers read the
pipeline from a file in the workspace (`path_of`), written once when it is recorded.
"""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from automl_tasks.core.errors import FeaturePipelineError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import FAMILY_TAG, FEATURE_PIPELINE_TAG, KIND_TAG, SOURCE_RUN_TAG
from automl_tasks.core.tracking import ensure_experiment, mlflow_client
from automl_tasks.features.pipeline import FILE_NAME, FeaturePipeline

FEATURE_PIPELINES_EXPERIMENT = "loopml-feature-pipelines"
MEMO_FOLDER = "embeddings"


def path_of(ws: Workspace, version: str) -> Path:
    """Where the workspace keeps the JSON of feature pipeline `version`."""
    return ws.home / "feature_pipelines" / f"{version}.json"


def write_local(ws: Workspace, pipeline: FeaturePipeline) -> Path:
    """The pipeline's JSON in the workspace (written once; the content names the file)."""
    path = path_of(ws, pipeline.version)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(pipeline.to_json())
        partial.replace(path)  # atomic: a reader never sees half a file
    return path


def memo_dir(ws: Workspace) -> Path:
    """Where the workspace memoises the sentence vectors of feature pipelines' text columns."""
    return ws.home / "feature_pipelines" / MEMO_FOLDER


@functools.lru_cache(maxsize=8)
def read_feature_pipeline(path: str) -> FeaturePipeline:
    """The pipeline in the workspace's JSON file `path` (cached: the content never changes under
    a version's name), reading the workspace's memo of sentence vectors."""
    pipeline = FeaturePipeline.from_dict(json.loads(Path(path).read_text()))
    return replace(pipeline, memo_dir=str(Path(path).parent / MEMO_FOLDER))


def record_feature_pipeline(ws: Workspace, family: str, pipeline: FeaturePipeline, *, source_run: str = "") -> str:
    """Record `pipeline` as a version of `family`'s feature pipelines; its MLflow run id."""
    write_local(ws, pipeline)
    client = mlflow_client(ws)
    experiment_id = ensure_experiment(ws, FEATURE_PIPELINES_EXPERIMENT)
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{FAMILY_TAG}` = '{family}' and tags.`{FEATURE_PIPELINE_TAG}` = '{pipeline.version}'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    tags = {KIND_TAG: "feature_pipeline", FAMILY_TAG: family, FEATURE_PIPELINE_TAG: pipeline.version}
    if source_run:
        tags[SOURCE_RUN_TAG] = source_run
    run = client.create_run(experiment_id, run_name=f"{family} features {pipeline.version}", tags=tags)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / FILE_NAME).write_text(pipeline.to_json())
        (Path(folder) / "steps.txt").write_text("\n".join(pipeline.describe()) + "\n")
        client.log_artifacts(run.info.run_id, folder)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def load_feature_pipeline(ws: Workspace, version: str) -> FeaturePipeline:
    """Feature pipeline `version` (a content hash) from MLflow; a clear error when unknown."""
    import mlflow

    local = path_of(ws, version)
    if local.exists():
        return read_feature_pipeline(str(local))
    client = mlflow_client(ws)
    experiment = client.get_experiment_by_name(FEATURE_PIPELINES_EXPERIMENT)
    runs = (
        client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`{FEATURE_PIPELINE_TAG}` = '{version}'", max_results=1
        )
        if experiment is not None
        else []
    )
    if not runs:
        raise FeaturePipelineError(f"no feature pipeline version {version!r} is recorded")
    text = mlflow.artifacts.load_text(f"runs:/{runs[0].info.run_id}/{FILE_NAME}")
    pipeline = FeaturePipeline.from_dict(json.loads(text))
    write_local(ws, pipeline)
    return pipeline
