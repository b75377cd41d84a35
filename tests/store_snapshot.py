"""Everything a workspace's stores hold, to prove that a refused input wrote nothing."""

from __future__ import annotations

from typing import Any

from automl_tasks.core.settings import Workspace
from automl_tasks.core.tracking import mlflow_client

# SQLite's transient journal files come and go with every read
_TRANSIENT_SUFFIXES = ("-journal", "-wal", "-shm")
# DVC's own lock, updater and state files (not data; DVC writes them in the background)
_DVC_STATE = ".dvc/tmp/"
# MLflow writes this beside a registered model's artifacts the first time it is loaded
# by a models:/ URI (a read, e.g. the drift check loading the champion): not a new model
_MLFLOW_LOAD_META = "registered_model_meta"


def store_snapshot(ws: Workspace) -> dict[str, Any]:
    """MLflow experiments, runs, registered models and versions, and every file of the
    workspace (DVC repository and remote, profiles, run scratch, artifacts), by name."""
    from mlflow.entities import ViewType

    client = mlflow_client(ws)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    ids = [e.experiment_id for e in experiments]
    runs = client.search_runs(ids, run_view_type=ViewType.ALL, max_results=10_000) if ids else []
    files = sorted(
        str(p.relative_to(ws.home))
        for p in ws.home.rglob("*")
        if p.is_file()
        and not p.name.endswith(_TRANSIENT_SUFFIXES)
        and _DVC_STATE not in p.relative_to(ws.home).as_posix()
        and p.name != _MLFLOW_LOAD_META
        and p.parent != ws.home / "bundled"
    )
    return {
        "experiments": sorted(e.name for e in experiments),
        "runs": sorted(r.info.run_id for r in runs),
        "registered_models": sorted(m.name for m in client.search_registered_models()),
        "model_versions": sorted((v.name, v.version) for v in client.search_model_versions()),
        "files": files,
    }


def assert_nothing_written(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Fail naming what appeared (or went) in each store."""
    changed = {
        key: {
            "new": sorted(set(map(str, after[key])) - set(map(str, before[key]))),
            "gone": sorted(set(map(str, before[key])) - set(map(str, after[key]))),
        }
        for key in before
        if before[key] != after[key]
    }
    assert not changed, f"a refused input changed the stores: {changed}"
