"""The trust_report DAG's task: measure a registered version's trust report."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import get_current_context, task

from operators._runtime import user_errors_fail_fast, workspace

log = logging.getLogger(__name__)


@task(task_id="trust_report", retries=0)
def trust_report() -> dict[str, Any]:
    """Noise and adversarial robustness and membership inference of the form's version."""
    from automl_tasks.trust.version_report import report_version

    context = get_current_context()
    params, run = context["params"], context["dag_run"]
    with user_errors_fail_fast():
        result = report_version(
            workspace(), params["family"], str(params["version"]), triggered_by=f"{run.dag_id} run {run.run_id}"
        )
    log.info("trust report of %s v%s: %s", result["family"], result["version"], result["summary"])
    for part, why in result["skipped"].items():
        log.info("not measured: %s: %s", part, why)
    return {k: result[k] for k in ("family", "version", "run_id", "summary")}
