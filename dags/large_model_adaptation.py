"""Large-model adaptation (OmniForce §3.3): PEFT on a pretrained text encoder, miniaturisation,
a family of derived models, the champion chosen on accuracy x latency on the target.

data_preprocess -> smoke (one epoch of each method on a sample) -> smoke_report ->
(baseline: frozen encoder + head || search: the method is the root of the space) ->
adapt -> miniaturise -> compile -> pareto_gate -> advisor -> end.
"""

from __future__ import annotations

from airflow.sdk import dag

from operators.adaptation import (
    adapt,
    adaptation_advisor,
    adaptation_end,
    adaptation_plan,
    adaptation_smoke_report,
    adaptation_start,
    compile_candidates,
    miniaturise,
    pareto_gate,
)
from operators.forms import form_params
from operators.hpo import hpo_job_estimator, hpo_workers
from operators.search_stage import search_stage
from operators.teardown import close_mlflow_runs


@dag(
    dag_id="large_model_adaptation",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["loopml", "adaptation"],
    doc_md=__doc__,
    params=form_params("large_model_adaptation"),
)
def large_model_adaptation():
    state = adaptation_start()
    stages = {
        branch: search_stage(
            adaptation_plan,
            hpo_job_estimator,
            hpo_workers,
            plan_args=(state, branch),
            study_args={"state": state, "branch": branch},
            group_id=group,
        )
        for branch, group in (("smoke", "smoke"), ("default", "baseline"), ("search", "search"))
    }
    verdict = adaptation_smoke_report(state)
    stages["smoke"] >> verdict >> [stages["default"], stages["search"]]
    adapted = adapt(state)
    [stages["search"], stages["default"]] >> adapted
    derived = miniaturise(state, adapted)
    candidates = compile_candidates(state, adapted, derived)
    gate = pareto_gate(state, candidates)
    advice = adaptation_advisor(state, candidates, gate)
    finish = adaptation_end(state, gate, advice)
    finish >> close_mlflow_runs()  # teardown: runs however the DAG run ends


large_model_adaptation()
