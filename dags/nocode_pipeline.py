"""NoCode pipeline (OmniForce Figure 3a): give a table, get a tracked, registered model.

start -> data_preprocess -> plan_search -> (job_estimator || workers) -> task_estimator
-> advisor -> end. Topology and the trigger form only; the work is in `operators`.
"""

from __future__ import annotations

from airflow.sdk import dag

from operators.forms import form_params
from operators.nocode import (
    advisor,
    data_preprocess,
    end,
    job_estimator,
    plan_search,
    start,
    task_estimator,
    workers,
)
from operators.search_stage import search_stage
from operators.teardown import close_mlflow_runs


@dag(
    dag_id="nocode_pipeline",
    schedule=None,
    catchup=False,
    tags=["loopml", "nocode"],
    max_active_runs=2,
    doc_md=__doc__,
    params=form_params("nocode_pipeline"),
)
def nocode_pipeline():
    request = start()
    pre = data_preprocess(request)
    search = search_stage(
        plan_search,
        job_estimator,
        workers,
        plan_args=(request, pre),
        study_args={"pre": pre},
        group_id="search",
        prefix_group_id=False,
    )
    registered = task_estimator(pre)
    search >> registered
    advice = advisor(pre)
    registered >> advice
    finish = end(pre, registered, advice)
    finish >> close_mlflow_runs()  # teardown: runs however the DAG run ends


nocode_pipeline()
