"""What a person does with a pipeline run's advice: accept a suggestion, dismiss it, or edit
the search space by hand. Accepting or editing yields a new search-space version (recorded
with its parent, diff and author) and the conf of a re-run of the same pipeline on the same
dataset version, warm-started from the run's study. Triggering that re-run is the caller's
job (the Airflow UI plugin), so this module stays free of Airflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from automl_tasks.core.errors import UserError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    ADVICE_STATUS_PREFIX,
    DATASET_URI_TAG,
    FAMILY_TAG,
    FEATURE_PIPELINE_TAG,
    KIND_TAG,
    SPACE_VERSION_TAG,
    STUDY_TAG,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, load_search_space
from automl_tasks.search_space.edits import apply_edit, load_text
from automl_tasks.search_space.versions import SpaceVersion, record_version

SUGGESTIONS_ARTIFACT = "advisor/suggestions.json"
#: suggestion edits that change the search space; `set_budget` changes the re-run's conf
SPACE_EDITS = ("widen_range", "fix_param", "drop_choice")
CONF_EDITS = ("set_budget",)


class AdviceError(UserError):
    """A suggestion that cannot be acted on (unknown run or index, already handled, not editable)."""


@dataclass(frozen=True)
class Rerun:
    """A re-run to trigger: the DAG's conf, the space version it searches, and why."""

    conf: dict[str, Any]
    space: SpaceVersion
    change: str

    def to_dict(self) -> dict[str, Any]:
        return {"conf": self.conf, "space": self.space.to_dict(), "change": self.change}


def _pipeline_run(ws: Workspace, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow_client(ws).get_run(run_id)
    except MlflowException:
        raise AdviceError(f"MLflow run {run_id!r} does not exist (any more) in this workspace") from None
    if run.data.tags.get(KIND_TAG) != "pipeline":
        raise AdviceError(f"MLflow run {run_id!r} is not a pipeline run; advice belongs to pipeline runs")
    return run


def suggestions(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    """The run's suggestions in order, each with `index`, `status` ("" = open) and `actionable`."""
    import mlflow

    run = _pipeline_run(ws, run_id)
    try:
        found = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{SUGGESTIONS_ARTIFACT}"))
    except Exception:  # the advisor has not run (yet), or failed
        return []
    tags = run.data.tags
    return [
        {
            **item,
            "index": i,
            "status": tags.get(f"{ADVICE_STATUS_PREFIX}{i}", ""),
            "actionable": (item.get("edit") or {}).get("kind") in SPACE_EDITS + CONF_EDITS,
        }
        for i, item in enumerate(found)
    ]


def requested_space(conf: dict[str, Any]) -> str:
    """The search space a run's conf asked for (YAML text; empty = the default tabular space)."""
    return load_text(conf.get("search_space") or str(DEFAULT_TABULAR_SPACE))


def _rerun(
    ws: Workspace, run: Any, conf: dict[str, Any], text: str, *, change: str, user: str, budget: dict[str, Any]
) -> Rerun:
    tags = run.data.tags
    family = tags[FAMILY_TAG]
    parent_text = requested_space(conf)
    record_version(ws, family, parent_text, change="searched by a pipeline run")  # the parent, if not yet recorded
    version = record_version(
        ws, family, text, parent_text=parent_text, change=change, accepted_by=user, source_run=run.info.run_id
    )
    rerun_conf = {
        **conf,
        **budget,
        "search_space": text,
        "dataset": tags[DATASET_URI_TAG],  # the same dataset version, whatever the file holds now
        "family": family,
        "warm_start_study": tags.get(STUDY_TAG, ""),
    }
    return Rerun(rerun_conf, version, change)


def accept(ws: Workspace, run_id: str, index: int, *, conf: dict[str, Any], user: str) -> Rerun:
    """Apply suggestion `index` of pipeline run `run_id` (whose DAG run was triggered with
    `conf`) to its search space; the new version is recorded as made by `user`. The caller
    triggers the re-run, then `mark_accepted`."""
    run = _pipeline_run(ws, run_id)
    items = suggestions(ws, run_id)
    if not 0 <= index < len(items):
        raise AdviceError(f"run {run_id} has {len(items)} suggestions; there is no suggestion {index}")
    item = items[index]
    if item["status"]:
        raise AdviceError(f"suggestion {index} of run {run_id} was already handled: {item['status']}")
    if not item["actionable"]:
        raise AdviceError(f"suggestion {index} ({item['kind']}) is advice for people; there is nothing to apply")
    edit = item["edit"]
    text = requested_space(conf)
    if edit["kind"] in SPACE_EDITS and load_search_space(text).find(edit["param"]) is None:
        text = _with_feature_params(ws, run, text)  # the formatter added it for the run's feature pipeline
    budget: dict[str, Any] = {}
    if edit["kind"] in SPACE_EDITS:
        text, change = apply_edit(text, edit["kind"], edit["param"], edit["value"])
    else:
        budget = {edit["param"]: edit["value"]}
        change = f"set {edit['param']} to {edit['value']} (was {conf.get(edit['param'], 'the default')})"
    return _rerun(ws, run, conf, text, change=f"accepted suggestion {index}: {change}", user=user, budget=budget)


def _with_feature_params(ws: Workspace, run: Any, text: str) -> str:
    """`text` with the feature-group parameters the run's feature pipeline added to its search
    (`search.formatter.add_feature_params`), so a suggestion about one of them can be applied."""
    from automl_tasks.features.store import load_feature_pipeline, path_of
    from automl_tasks.search.formatter import add_feature_params

    version = run.data.tags.get(FEATURE_PIPELINE_TAG)
    if not version:
        return text
    load_feature_pipeline(ws, version)  # written to the workspace if only MLflow has it
    return add_feature_params(text, str(path_of(ws, version)), run.data.params.get("task_type", "binary"))


def mark_accepted(ws: Workspace, run_id: str, index: int, rerun: Rerun, *, user: str, rerun_id: str) -> None:
    """Record on the run that suggestion `index` was accepted, once its re-run `rerun_id` exists."""
    mark(ws, run_id, index, f"accepted by {user}: space version {rerun.space.version}, re-run {rerun_id}")


def edit_space(ws: Workspace, run_id: str, text: str, *, conf: dict[str, Any], user: str) -> Rerun:
    """A re-run of pipeline run `run_id` on a search space a person wrote (validated: a fault
    raises SearchSpaceError with its YAML path, and nothing is recorded)."""
    run = _pipeline_run(ws, run_id)
    text = load_text(text)
    return _rerun(ws, run, conf, text, change="edited by hand", user=user, budget={})


def dismiss(ws: Workspace, run_id: str, index: int, *, user: str) -> None:
    """Mark suggestion `index` of run `run_id` as dismissed by `user`."""
    items = suggestions(ws, run_id)
    if not 0 <= index < len(items):
        raise AdviceError(f"run {run_id} has {len(items)} suggestions; there is no suggestion {index}")
    if items[index]["status"]:
        raise AdviceError(f"suggestion {index} of run {run_id} was already handled: {items[index]['status']}")
    mark(ws, run_id, index, f"dismissed by {user}")


def mark(ws: Workspace, run_id: str, index: int, status: str) -> None:
    mlflow_client(ws).set_tag(run_id, f"{ADVICE_STATUS_PREFIX}{index}", status)


def run_space_version(ws: Workspace, run_id: str) -> str:
    """The search-space version a pipeline run searched ("" before its plan_search)."""
    return _pipeline_run(ws, run_id).data.tags.get(SPACE_VERSION_TAG, "")
