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

from airflow.sdk import Param, dag

from operators.drift import (
    plan_retrain_search,
    prepare_data,
    retrain_end,
    retrain_gate,
    retrain_start,
    retrain_task_estimator,
)
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
    params={
        "family": Param("breast_cancer", type="string", minLength=1, title="Model family", section="Data"),
        "window_uri": Param(
            "",
            type="string",
            title="Recent window (dataset URI)",
            description="Filled by drift_check. Leave empty when giving a data file.",
            section="Data",
        ),
        "data_path": Param(
            "",
            type="string",
            title="Recent labelled data file",
            description="CSV/Parquet with the champion's columns and the target.",
            section="Data",
        ),
        "combine": Param(
            "reference_plus_recent",
            type="string",
            enum=["reference_plus_recent", "recent_only"],
            title="Retraining data",
            description="The champion's training data plus the recent rows, or the recent rows alone.",
            section="Data",
        ),
        "eval_fraction": Param(
            0.3,
            type="number",
            minimum=0.05,
            maximum=0.8,
            title="Held-out share of recent rows",
            description="Becomes the family's evaluation data; champion and challenger are compared on it.",
            section="Data",
        ),
        "n_trials": Param(10, type="integer", minimum=1, title="Trial budget", section="Search"),
        "n_workers": Param(2, type="integer", minimum=1, maximum=16, title="Workers", section="Search"),
        "time_budget_s": Param(600, type="integer", minimum=10, title="Time budget (seconds)", section="Search"),
        "search_space": Param(
            "",
            type="string",
            title="Search space (YAML, optional)",
            description="Empty: the champion's search space, warm-started from its study.",
            section="Search",
        ),
        "margin": Param(0.0, type="number", minimum=0, title="Promotion margin", section="Registry"),
        "max_latency_ratio": Param(1.5, type="number", minimum=1, title="Allowed latency ratio", section="Registry"),
        "max_size_ratio": Param(2.0, type="number", minimum=1, title="Allowed model size ratio", section="Registry"),
        "seed": Param(0, type="integer", minimum=0, title="Seed", section="Search"),
        "reason": Param("", type="string", title="Reason", description="Why this retrain runs.", section="Registry"),
    },
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
