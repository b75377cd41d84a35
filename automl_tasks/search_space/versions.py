"""Search-space versions: every space a family was searched with, content-hashed, with its
parent, a diff against it, the change in words and who made it.

Stored in MLflow (the system of record every other loopml asset lives in, reachable over the
network in the distributed mode): one run per (family, version) in the experiment
`SPACES_EXPERIMENT`, holding `space.yaml` and `diff.patch`. The version id is the space's
content hash (`SearchSpace.hash`, the one recorded on studies and model versions), so
recording the same space twice returns the first record and its provenance.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    ACCEPTED_BY_TAG,
    FAMILY_TAG,
    KIND_TAG,
    SEARCH_SCORE_TAG,
    SOURCE_RUN_TAG,
    SPACE_CHANGE_TAG,
    SPACE_HASH_TAG,
    SPACE_PARENT_TAG,
    SPACE_VERSION_TAG,
    STUDY_TAG,
    tag_number,
)
from automl_tasks.core.tracking import ensure_experiment, mlflow_client
from automl_tasks.search_space.edits import space_diff
from automl_tasks.search_space.language import load_search_space

SPACES_EXPERIMENT = "loopml-search-spaces"
SPACE_FILE = "space.yaml"
DIFF_FILE = "diff.patch"


@dataclass(frozen=True)
class SpaceVersion:
    """One recorded search-space version of a family."""

    family: str
    version: str  # the content hash
    parent: str  # "" for a root version
    change: str
    accepted_by: str
    source_run: str
    created_at: float
    run_id: str  # the MLflow run that holds space.yaml and diff.patch

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _from_run(run: Any) -> SpaceVersion:
    tags = run.data.tags
    return SpaceVersion(
        family=tags.get(FAMILY_TAG, ""),
        version=tags.get(SPACE_HASH_TAG, ""),
        parent=tags.get(SPACE_PARENT_TAG, ""),
        change=tags.get(SPACE_CHANGE_TAG, ""),
        accepted_by=tags.get(ACCEPTED_BY_TAG, ""),
        source_run=tags.get(SOURCE_RUN_TAG, ""),
        created_at=run.info.start_time / 1000,
        run_id=run.info.run_id,
    )


def find_version(ws: Workspace, family: str, version: str) -> SpaceVersion | None:
    """The recorded version `version` of `family`'s spaces, or None."""
    client = mlflow_client(ws)
    experiment = client.get_experiment_by_name(SPACES_EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{FAMILY_TAG}` = '{family}' and tags.`{SPACE_HASH_TAG}` = '{version}'",
        max_results=1,
    )
    return _from_run(runs[0]) if runs else None


def record_version(
    ws: Workspace,
    family: str,
    text: str,
    *,
    parent_text: str | None = None,
    change: str = "",
    accepted_by: str = "",
    source_run: str = "",
) -> SpaceVersion:
    """Record `text` as a version of `family`'s search space (validated; the first record of
    the same content wins and is returned); its parent and diff come from `parent_text`."""
    space = load_search_space(text)
    found = find_version(ws, family, space.hash)
    if found is not None:
        return found
    parent = load_search_space(parent_text).hash if parent_text is not None else ""
    client = mlflow_client(ws)
    experiment_id = ensure_experiment(ws, SPACES_EXPERIMENT)
    tags = {
        KIND_TAG: "search_space",
        FAMILY_TAG: family,
        SPACE_HASH_TAG: space.hash,
        SPACE_PARENT_TAG: parent,
        SPACE_CHANGE_TAG: change[:4900],
        ACCEPTED_BY_TAG: accepted_by,
        SOURCE_RUN_TAG: source_run,
    }
    run = client.create_run(experiment_id, run_name=f"{family} space {space.hash}", tags=tags)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / SPACE_FILE).write_text(text)
        if parent_text is not None:
            diff = space_diff(parent_text, text, parent_name=parent or "parent", child_name=space.hash)
            (Path(folder) / DIFF_FILE).write_text(diff)
        client.log_artifacts(run.info.run_id, folder)
    client.set_terminated(run.info.run_id)
    return _from_run(client.get_run(run.info.run_id))


def version_text(ws: Workspace, run_id: str, name: str = SPACE_FILE) -> str:
    """`space.yaml` (or `diff.patch`) of the version recorded in MLflow run `run_id` ("" if it has none)."""
    import mlflow

    mlflow_client(ws)
    try:
        return mlflow.artifacts.load_text(f"runs:/{run_id}/{name}")
    except Exception:  # a root version has no diff
        return ""


def family_versions(ws: Workspace, family: str) -> list[dict[str, Any]]:
    """Every space version of `family`, newest first, each with the pipeline runs that searched
    it and the scores of the model versions those runs registered (did the change help?)."""
    client = mlflow_client(ws)
    experiment = client.get_experiment_by_name(SPACES_EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{FAMILY_TAG}` = '{family}'", order_by=["start_time DESC"]
    )
    family_experiment = client.get_experiment_by_name(family)
    registered = _registered_by_study(client, family)
    out = []
    for run in runs:
        version = _from_run(run)
        searches = []
        if family_experiment is not None:
            for pipeline in client.search_runs(
                [family_experiment.experiment_id],
                filter_string=f"tags.`{SPACE_VERSION_TAG}` = '{version.version}'",
                order_by=["start_time DESC"],
            ):
                study = pipeline.data.tags.get(STUDY_TAG, "")
                searches.append(
                    {
                        "run_id": pipeline.info.run_id,
                        "status": pipeline.info.status,
                        "study": study,
                        "started": pipeline.info.start_time / 1000,
                        **registered.get(study, {}),
                    }
                )
        out.append({**version.to_dict(), "runs": searches})
    return out


def _registered_by_study(client: Any, family: str) -> dict[str, dict[str, Any]]:
    """{study: {model_version, search_score, test_score}} of `family`'s registered versions."""
    try:
        versions = client.search_model_versions(f"name='{family}'")
    except Exception:  # no registered model yet
        return {}
    out = {}
    for v in versions:
        study = v.tags.get(STUDY_TAG)
        if not study:
            continue
        test = next((value for key, value in v.tags.items() if key.startswith("test_")), None)
        out[study] = {
            "model_version": str(v.version),
            "search_score": tag_number(v.tags.get(SEARCH_SCORE_TAG)),
            "test_score": tag_number(test),
        }
    return out
