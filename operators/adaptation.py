"""Tasks of the large_model_adaptation DAG; thin calls into `automl_tasks.pipelines.adaptation`.

The smoke, baseline and search studies run on the HPO pipeline's job estimator and workers
(`operators.hpo`): the same engine, strategies and budget rules as every other search.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import TriggerRule, get_current_context, task

from operators._runtime import parent_run_closed_on_failure, user_errors_fail_fast, workspace
from operators.search_stage import worker_slots

log = logging.getLogger(__name__)


def _studies(pre: dict[str, Any]) -> dict[str, str]:
    from automl_tasks.pipelines.hpo import study_names
    from operators.nocode import study_name_for

    return study_names(study_name_for(pre))


def _request(state: dict[str, Any]) -> Any:
    from automl_tasks.pipelines.requests import AdaptationRequest

    return AdaptationRequest(**state["request"])


def _pre(state: dict[str, Any]) -> Any:
    from automl_tasks.pipelines.intake import PreprocessResult

    return PreprocessResult.from_dict(state["pre"], workspace())


@task(task_id="data_preprocess", retries=0)
def adaptation_start() -> dict[str, Any]:
    """Check the form and the texts (Great Expectations), version them, open the MLflow run."""
    context = get_current_context()
    params = context["params"]
    with user_errors_fail_fast():
        from automl_tasks.pipelines.adaptation import prepare_adaptation
        from automl_tasks.pipelines.requests import AdaptationRequest

        request = AdaptationRequest.from_conf(
            {k: params[k] for k in AdaptationRequest.__dataclass_fields__ if k in params}
        )
        pre = prepare_adaptation(workspace(), request, dag_run_id=context["run_id"])
    return {"request": request.to_dict(), "pre": pre.to_dict()}


@task(task_id="plan")
def adaptation_plan(state: dict[str, Any], branch: str) -> list[Any]:
    """Create the branch's study (smoke sample, head baseline or the method search); return its worker slots."""
    from automl_tasks.pipelines.adaptation import plan_branch

    with parent_run_closed_on_failure(state["pre"]["parent_run_id"]), user_errors_fail_fast():
        studies = _studies(state["pre"])
        smoke = studies["smoke"] if branch == "search" else None
        workers = plan_branch(workspace(), _request(state), _pre(state), branch, studies[branch], smoke_study=smoke)
    return worker_slots(studies[branch], workers)


@task(task_id="smoke_report", trigger_rule=TriggerRule.ALL_DONE)
def adaptation_smoke_report(state: dict[str, Any]) -> dict[str, Any]:
    """Stop here, naming each method that could not train one epoch, or a budget too small for one epoch."""
    from automl_tasks.pipelines.adaptation import smoke_verdict

    with parent_run_closed_on_failure(state["pre"]["parent_run_id"]), user_errors_fail_fast():
        verdict = smoke_verdict(workspace(), _request(state), _pre(state), _studies(state["pre"])["smoke"])
    log.info("smoke test passed: %s", verdict)
    return verdict


@task(task_id="adapt")
def adapt(state: dict[str, Any]) -> dict[str, Any]:
    """Retrain the best configuration; register the base (once) and the adapted version."""
    from automl_tasks.pipelines.adaptation import adapt as adapt_best

    with parent_run_closed_on_failure(state["pre"]["parent_run_id"]), user_errors_fail_fast():
        return adapt_best(
            workspace(),
            _request(state),
            _pre(state),
            _studies(state["pre"]),
            dag_run_id=get_current_context()["run_id"],
        )


@task(task_id="miniaturise")
def miniaturise(state: dict[str, Any], adapted: dict[str, Any]) -> list[dict[str, Any]]:
    """Distilled, pruned and int8 versions derived from the adapted teacher."""
    from automl_tasks.pipelines.adaptation import miniaturise as derive

    with parent_run_closed_on_failure(state["pre"]["parent_run_id"]), user_errors_fail_fast():
        return derive(
            workspace(),
            _request(state),
            _pre(state),
            _studies(state["pre"]),
            adapted["adapted"],
            dag_run_id=get_current_context()["run_id"],
        )


@task(task_id="compile")
def compile_candidates(
    state: dict[str, Any], adapted: dict[str, Any], derived: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every candidate compiled, parity-checked and timed on the deployment target."""
    from automl_tasks.pipelines.adaptation import compile_candidates as build

    with parent_run_closed_on_failure(state["pre"]["parent_run_id"]), user_errors_fail_fast():
        return build(
            workspace(), _request(state), _pre(state), [adapted["adapted"], *derived], _studies(state["pre"])["search"]
        )


@task(task_id="pareto_gate")
def pareto_gate(state: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy x latency x size; the most accurate candidate within the budget goes to the promotion gate."""
    from automl_tasks.pipelines.adaptation import pareto_gate as gate

    with parent_run_closed_on_failure(state["pre"]["parent_run_id"]), user_errors_fail_fast():
        return gate(
            workspace(),
            _request(state),
            _pre(state),
            candidates,
            _studies(state["pre"])["search"],
            dag_run_id=get_current_context()["run_id"],
        )


@task(task_id="advisor")
def adaptation_advisor(state: dict[str, Any], candidates: list[dict[str, Any]], gate: dict[str, Any]) -> dict[str, Any]:
    """Which method won, what each miniaturisation step cost and gained, what to try next."""
    from automl_tasks.pipelines.adaptation import advise_adaptation

    with parent_run_closed_on_failure(state["pre"]["parent_run_id"]), user_errors_fail_fast():
        return advise_adaptation(workspace(), _pre(state), _studies(state["pre"]), candidates, gate)


@task(task_id="end")
def adaptation_end(state: dict[str, Any], gate: dict[str, Any], advice: dict[str, Any]) -> dict[str, Any]:
    """Close the MLflow run; say which version serves and why."""
    from automl_tasks.pipelines.intake import finish_parent_run

    finish_parent_run(workspace(), state["pre"]["parent_run_id"])
    chosen = gate.get("chosen")
    log.info("family %s: %s", state["pre"]["family"], gate["why"])
    return {
        "family": state["pre"]["family"],
        "champion": gate["promotion"].get("champion"),
        "promoted": gate["promotion"].get("promoted", False),
        "chosen": chosen,
        "why": gate["why"],
        "suggestions": advice.get("suggestions", []),
        "mlflow_run_id": state["pre"]["parent_run_id"],
    }
