"""HPO pipeline (OmniForce Figure 3b) for any registered algorithm.

start -> (smoke job_estimator || smoke workers) -> smoke_report -> (search: job_estimator
|| workers) || (default: job_estimator || workers) -> task_estimator -> advisor -> end.
The smoke branch runs two cheap trials and stops the run with the errors if none
completes; the default branch scores the algorithm's default hyperparameters on the same
splits and seed as the search; the advisor re-scores both on several split seeds and
says whether the search was worth it.
"""

from __future__ import annotations

from airflow.sdk import dag

from operators.forms import form_params
from operators.hpo import (
    hpo_advisor,
    hpo_end,
    hpo_job_estimator,
    hpo_plan,
    hpo_start,
    hpo_task_estimator,
    hpo_workers,
    smoke_report,
)
from operators.search_stage import search_stage
from operators.teardown import close_mlflow_runs


@dag(
    dag_id="hpo_pipeline",
    schedule=None,
    catchup=False,
    max_active_runs=2,
    tags=["loopml", "hpo"],
    doc_md=__doc__,
    params=form_params("hpo_pipeline"),
)
def hpo_pipeline():
    state = hpo_start()
    stages = {
        branch: search_stage(
            hpo_plan,
            hpo_job_estimator,
            hpo_workers,
            plan_args=(state, branch),
            study_args={"state": state, "branch": branch},
            group_id=branch,
        )
        for branch in ("smoke", "default", "search")
    }
    verdict = smoke_report(state)
    stages["smoke"] >> verdict >> [stages["default"], stages["search"]]
    registered = hpo_task_estimator(state)
    stages["search"] >> registered
    advice = hpo_advisor(state)
    [registered, stages["default"]] >> advice
    finish = hpo_end(state, registered, advice)
    finish >> close_mlflow_runs()  # teardown: runs however the DAG run ends


hpo_pipeline()
