"""What every loopml task needs from its Airflow context: the workspace and error mapping."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


def workspace() -> Any:
    """The workspace named by the task's environment (LOOPML_HOME and store URLs)."""
    from automl_tasks.core.settings import Workspace

    return Workspace.from_env().ensure()


@contextlib.contextmanager
def user_errors_fail_fast() -> Iterator[None]:
    """Turn a `UserError` (bad input the user must fix) into AirflowFailException: no retry,
    clear message. Any other exception is a fault: the task fails with its traceback and
    Airflow retries it as configured."""
    from airflow.sdk.exceptions import AirflowFailException

    from automl_tasks.core.errors import UserError

    try:
        yield
    except UserError as exc:
        log.error("%s", exc)
        raise AirflowFailException(str(exc)) from exc


@contextlib.contextmanager
def parent_run_closed_on_failure(parent_run_id: str) -> Iterator[None]:
    """Mark the pipeline's MLflow run FAILED (with the error) when a task fails."""
    try:
        yield
    except BaseException as exc:
        try:
            from automl_tasks.pipelines.intake import finish_parent_run

            finish_parent_run(workspace(), parent_run_id, status="FAILED", message=f"{type(exc).__name__}: {exc}")
        except Exception as inner:  # never hide the original failure
            log.warning("could not mark MLflow run %s failed: %s", parent_run_id, inner)
        raise
