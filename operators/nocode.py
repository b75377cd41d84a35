"""The NoCode pipeline's tasks: start, data_preprocess, plan_search, job_estimator,
workers, task_estimator, advisor, end. Each one is a thin call into `automl_tasks`.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import TriggerRule, get_current_context, task

from automl_tasks.pipelines.forms import NOCODE_FORM
from operators._runtime import parent_run_closed_on_failure, user_errors_fail_fast, workspace
from operators.search_stage import worker_slots

log = logging.getLogger(__name__)


@task(task_id="start")
def start() -> dict[str, Any]:
    """Check the trigger form; fail before any work with a message naming the field."""
    params = get_current_context()["params"]
    with user_errors_fail_fast():
        from automl_tasks.pipelines.requests import NoCodeRequest

        request = NoCodeRequest.from_conf({k: params[k] for k in NOCODE_FORM.names() if k in params})
    log.info("request: %s", {k: v for k, v in request.to_dict().items() if k != "search_space"})
    return request.to_dict()


@task(task_id="data_preprocess", retries=0)
def data_preprocess(request: dict[str, Any]) -> dict[str, Any]:
    """Ingest, validate (Great Expectations), version (DVC) and profile the table."""
    run_id = get_current_context()["run_id"]
    with user_errors_fail_fast():
        from automl_tasks.pipelines.intake import preprocess
        from automl_tasks.pipelines.requests import NoCodeRequest

        result = preprocess(workspace(), NoCodeRequest(**request), dag_run_id=run_id)
    return result.to_dict()


def study_name_for(pre: dict[str, Any]) -> str:
    """The run's Optuna study: `<family>-<dag run id>`, known to every task of the run."""
    run_id = get_current_context()["run_id"]
    return f"{pre['family']}-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in run_id)


@task(task_id="plan_search")
def plan_search(request: dict[str, Any], pre: dict[str, Any]) -> list[Any]:
    """The formatter: budget, strategy and study, default and warm-start trials enqueued.

    Returns the worker slots the `workers` task is mapped over.
    """
    from automl_tasks.pipelines.intake import PreprocessResult
    from automl_tasks.pipelines.nocode import plan_search as plan
    from automl_tasks.pipelines.requests import NoCodeRequest

    req = NoCodeRequest(**request)
    with parent_run_closed_on_failure(pre["parent_run_id"]), user_errors_fail_fast():
        ws = workspace()
        summary = plan(ws, req, PreprocessResult.from_dict(pre, ws), study_name_for(pre))
    log.info("search planned: %s", summary)
    return worker_slots(study_name_for(pre), req.n_workers)


@task(task_id="job_estimator")
def job_estimator(pre: dict[str, Any]) -> dict[str, Any]:
    """Watch the search: budget, straggler time-outs, dead-worker heartbeats."""
    from automl_tasks.search import watch_search

    with parent_run_closed_on_failure(pre["parent_run_id"]):
        ws = workspace()
        return watch_search(ws, study_name_for(pre)).to_dict()


@task(task_id="workers", retries=1)
def workers(pre: dict[str, Any], worker_index: int) -> dict[str, Any]:
    """One search worker (mapped N times): reserve trials, evaluate, report."""
    from dataclasses import asdict

    from automl_tasks.search import run_worker

    return asdict(run_worker(workspace(), study_name_for(pre), worker_index))


@task(task_id="task_estimator", trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
def task_estimator(pre: dict[str, Any]) -> dict[str, Any]:
    """Final training, ONNX export + parity, latency, registration in the family."""
    from automl_tasks.pipelines.registration import train_and_register

    run_id = get_current_context()["run_id"]
    with parent_run_closed_on_failure(pre["parent_run_id"]), user_errors_fail_fast():
        result = train_and_register(
            workspace(), study_name_for(pre), dag_run_id=run_id, dataset_version=pre["dataset_version"]
        )
    return result.to_dict()


@task(task_id="advisor")
def advisor(pre: dict[str, Any]) -> dict[str, Any]:
    """fANOVA importance, plots and suggestions logged to the pipeline run."""
    from automl_tasks.pipelines.advisor import advise
    from automl_tasks.pipelines.intake import PreprocessResult

    with parent_run_closed_on_failure(pre["parent_run_id"]):
        ws = workspace()
        return advise(ws, study_name_for(pre), PreprocessResult.from_dict(pre, ws).profile())


@task(task_id="end")
def end(pre: dict[str, Any], registered: dict[str, Any], advice: dict[str, Any]) -> dict[str, Any]:
    """Close the MLflow run and say where to look."""
    from automl_tasks.pipelines.intake import finish_parent_run

    ws = workspace()
    finish_parent_run(ws, pre["parent_run_id"])
    summary = {
        "family": registered["family"],
        "version": registered["version"],
        "alias": registered["alias"],
        "metric": registered["metric"],
        "test_score": registered["test_score"],
        "model_uri": registered["model_uri"],
        "mlflow_run_id": pre["parent_run_id"],
        "dataset_uri": pre["dataset_uri"],
        "suggestions": advice["suggestions"],
        "warning": registered.get("warning", ""),
    }
    if summary["warning"]:
        log.warning("ATTENTION: %s", summary["warning"])
    log.info(
        "model family %s version %s is %s (%s=%.4f); MLflow run %s; serve it with: loopml serve %s",
        summary["family"],
        summary["version"],
        summary["alias"],
        summary["metric"],
        summary["test_score"],
        summary["mlflow_run_id"],
        summary["family"],
    )
    return summary
