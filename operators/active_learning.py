"""The active_learning task: choose a labelling batch and say where to label it."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import get_current_context, task

from operators._runtime import user_errors_fail_fast, workspace

log = logging.getLogger(__name__)


@task(task_id="select_batch", retries=0)
def select_batch() -> dict[str, Any]:
    """The rows the champion is least sure of (or a random sample), stored as a labelling batch."""
    from automl_tasks.monitoring.active_learning import select_batch as choose

    context = get_current_context()
    params = context["params"]
    with user_errors_fail_fast():
        batch = choose(
            workspace(),
            params["family"],
            pool=params["pool"],
            batch_size=int(params["batch_size"]),
            strategy=params["strategy"],
            diversity=bool(params["diversity"]),
            seed=int(params["seed"]),
            dag_run_id=context["run_id"],
        )
    log.info(
        "label the %d rows of %s on the Label page: /loopml/label/%s (or upload a CSV with their labels there)",
        batch.rows,
        batch.batch_uri,
        batch.family,
    )
    return batch.to_dict()
