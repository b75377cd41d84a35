"""Does the workspace have a model family yet? Read at DAG parse time, so it must be cheap.

drift_check's hourly tick has nothing to check on a workspace with no family, and on the
embedded SQLite metadata DB every scheduled run is one more writer beside the first
`loopml demo` (the write contention of docs/DESIGN.md, "Embedded metadata DB"). The DAG
file asks this module and has no schedule until a family exists; the dag-processor
re-parses the file every 30 s, so the tick starts soon after the first registration.
"""

from __future__ import annotations

import sqlite3

from automl_tasks.core.settings import Workspace


def has_model_family(ws: Workspace) -> bool:
    """True when the MLflow registry holds a registered model (a family).

    On the embedded SQLite store: one read-only stdlib query, nothing created when the file
    does not exist. On any other store (PostgreSQL) the answer would need MLflow, which a
    DAG file must not import: True, the tick stays on and simply finds no family.
    """
    prefix = "sqlite:///"
    if not ws.mlflow_uri.startswith(prefix):
        return True
    path = ws.mlflow_uri[len(prefix) :]
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT 1 FROM registered_models LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError as exc:
        message = str(exc)
        if "unable to open" in message or "no such table" in message:
            return False  # no MLflow store yet, or one without a registry table
        return True  # locked or busy: keep the tick, it handles an empty registry
