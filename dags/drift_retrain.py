"""Drift retrain: recent labelled data -> a new version of the same family -> the gate.

start -> prepare_data (Great Expectations against the champion's schema; reference +
recent rows stored as a new DVC version; part of the recent rows held out) ->
plan_search (warm-started from the champion's study) -> (job_estimator || workers) ->
task_estimator (registered as `challenger`, lineage to the champion) -> promotion_gate
(both scored on the held-out recent rows) -> advisor -> end. A schema break stops at
prepare_data: nothing is stored or registered and the champion keeps serving. Serving
endpoints pick up a promoted model by themselves.
"""

from __future__ import annotations

from airflow.sdk import dag

from operators.drift import (
    plan_retrain_search,
    prepare_data,
    retrain_end,
    retrain_gate,
    retrain_start,
    retrain_task_estimator,
)
from operators.forms import form_params
from operators.nocode import advisor, job_estimator, workers
from operators.search_stage import search_stage
from operators.teardown import close_mlflow_runs


@dag(
    dag_id="drift_retrain",
    schedule=None,
    catchup=False,
    max_active_runs=2,
    tags=["loopml", "monitoring"],
    doc_md=__doc__,
    params=form_params("drift_retrain"),
)
def drift_retrain():
    request = retrain_start()
    pre = prepare_data(request)
    search = search_stage(
        plan_retrain_search,
        job_estimator,
        workers,
        plan_args=(request, pre),
        study_args={"pre": pre},
        group_id="search",
        prefix_group_id=False,
    )
    registered = retrain_task_estimator(pre)
    search >> registered
    decision = retrain_gate(request, pre, registered)
    advice = advisor(pre)
    decision >> advice
    finish = retrain_end(pre, registered, decision)
    [finish, advice] >> close_mlflow_runs()  # teardown: runs however the DAG run ends


drift_retrain()
