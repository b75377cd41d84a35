"""Tasks of the HPO DAG: smoke test, default baseline and search branches, comparison."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import TriggerRule, get_current_context, task

from operators._runtime import parent_run_closed_on_failure, user_errors_fail_fast, workspace
from operators.search_stage import worker_slots

log = logging.getLogger(__name__)


def _study(pre: dict[str, Any], branch: str) -> str:
    from automl_tasks.pipelines.hpo import study_names
    from operators.nocode import study_name_for

    return study_names(study_name_for(pre))[branch]


@task(task_id="start", retries=0)
def hpo_start() -> dict[str, Any]:
    """Check the form, then ingest, validate and version the dataset (fails fast, naming the field)."""
    context = get_current_context()
    params = context["params"]
    with user_errors_fail_fast():
        from automl_tasks.pipelines.hpo import HpoRequest, prepare_hpo

        request = HpoRequest.from_conf({k: params[k] for k in HpoRequest.__dataclass_fields__ if k in params})
        pre = prepare_hpo(workspace(), request, dag_run_id=context["run_id"])
    return {"request": request.to_dict(), "pre": pre.to_dict()}


@task(task_id="plan")
def hpo_plan(state: dict[str, Any], branch: str) -> list[Any]:
    """Create the branch's study; return its worker slots."""
    from automl_tasks.pipelines.hpo import HpoRequest, plan_branch
    from automl_tasks.pipelines.intake import PreprocessResult

    pre = state["pre"]
    ws = workspace()
    with parent_run_closed_on_failure(pre["parent_run_id"]), user_errors_fail_fast():
        intake = PreprocessResult.from_dict(pre, ws)
        workers = plan_branch(ws, HpoRequest(**state["request"]), intake, branch, _study(pre, branch))
    return worker_slots(_study(pre, branch), workers)


@task(task_id="job_estimator")
def hpo_job_estimator(state: dict[str, Any], branch: str) -> dict[str, Any]:
    """Budget, straggler time-outs and dead-worker heartbeats of one branch's study."""
    from automl_tasks.search import watch_search

    pre = state["pre"]
    with parent_run_closed_on_failure(pre["parent_run_id"]):
        ws = workspace()
        return watch_search(ws, _study(pre, branch)).to_dict()


@task(task_id="workers", retries=1)
def hpo_workers(state: dict[str, Any], branch: str, worker_index: int) -> dict[str, Any]:
    """One worker of one branch's study."""
    from dataclasses import asdict

    from automl_tasks.search import run_worker

    return asdict(run_worker(workspace(), _study(state["pre"], branch), worker_index))


@task(task_id="smoke_report", trigger_rule=TriggerRule.ALL_DONE)
def smoke_report(state: dict[str, Any]) -> dict[str, Any]:
    """Stop here, with the trials' errors, unless the algorithm completed a smoke trial."""
    from automl_tasks.pipelines.hpo import smoke_verdict

    pre = state["pre"]
    with parent_run_closed_on_failure(pre["parent_run_id"]), user_errors_fail_fast():
        verdict = smoke_verdict(workspace(), _study(pre, "smoke"), state["request"]["algorithm"])
    log.info("smoke test passed: %s", verdict)
    return verdict


@task(task_id="task_estimator", trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
def hpo_task_estimator(state: dict[str, Any]) -> dict[str, Any]:
    """Final training of the best searched configuration and registration in the family.

    Skipped (not failed) when the search never started because the smoke test stopped the run."""
    from airflow.sdk.exceptions import AirflowSkipException

    from automl_tasks.pipelines.hpo import register_best, search_started

    pre = state["pre"]
    if not search_started(workspace(), _study(pre, "search")):
        raise AirflowSkipException("the search did not run (see smoke_report); nothing to register")
    with parent_run_closed_on_failure(pre["parent_run_id"]), user_errors_fail_fast():
        return register_best(
            workspace(),
            _study(pre, "search"),
            dag_run_id=get_current_context()["run_id"],
            dataset_version=pre["dataset_version"],
        )


@task(task_id="advisor")
def hpo_advisor(state: dict[str, Any]) -> dict[str, Any]:
    """Search vs default with its uncertainty, plus importance plots and suggestions."""
    from automl_tasks.pipelines.advisor import advise
    from automl_tasks.pipelines.hpo import HpoRequest, compare, study_names
    from automl_tasks.pipelines.intake import PreprocessResult
    from operators.nocode import study_name_for

    pre = state["pre"]
    ws = workspace()
    with parent_run_closed_on_failure(pre["parent_run_id"]), user_errors_fail_fast():
        intake = PreprocessResult.from_dict(pre, ws)
        verdict = compare(ws, HpoRequest(**state["request"]), intake, study_names(study_name_for(pre)))
        advice = advise(ws, _study(pre, "search"), intake.profile())
    return {**advice, "search_vs_default": verdict}


@task(task_id="end")
def hpo_end(state: dict[str, Any], registered: dict[str, Any], advice: dict[str, Any]) -> dict[str, Any]:
    """Close the MLflow run; say what was found and whether the search paid off."""
    from automl_tasks.pipelines.intake import finish_parent_run

    pre = state["pre"]
    finish_parent_run(workspace(), pre["parent_run_id"])
    verdict = advice["search_vs_default"]
    log.info(
        "%s v%s registered as %s. %s",
        registered["family"],
        registered["version"],
        registered["alias"],
        verdict["verdict"],
    )
    if registered.get("warning"):
        log.warning("ATTENTION: %s", registered["warning"])
    return {
        "warning": registered.get("warning", ""),
        "family": registered["family"],
        "version": registered["version"],
        "alias": registered["alias"],
        "test_score": registered["test_score"],
        "search_vs_default": verdict,
        "suggestions": advice.get("suggestions", []),
        "mlflow_run_id": pre["parent_run_id"],
    }
