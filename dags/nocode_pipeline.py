"""NoCode pipeline (OmniForce Figure 3a): give a table, get a tracked, registered model.

start -> data_preprocess -> plan_search -> (job_estimator || workers) -> task_estimator
-> advisor -> end. Topology and the trigger form only; the work is in `operators`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

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

BUNDLED_DATASETS = ["breast_cancer", "wine", "iris", "diabetes", "digits"]


@dag(
    dag_id="nocode_pipeline",
    schedule=None,
    catchup=False,
    tags=["loopml", "nocode"],
    max_active_runs=2,
    doc_md=__doc__,
    params={
        "dataset": Param(
            "breast_cancer",
            type="string",
            title="Dataset",
            description=f"A bundled dataset ({', '.join(BUNDLED_DATASETS)}) or the path of a CSV/Parquet file.",
            examples=BUNDLED_DATASETS,
            section="Data",
        ),
        "target": Param("target", type="string", title="Target column", section="Data"),
        "task_type": Param(
            "auto",
            type="string",
            enum=["auto", "binary", "multiclass", "regression"],
            title="Task type",
            description="'auto' infers it from the target column.",
            section="Data",
        ),
        "metric": Param(
            "auto",
            type="string",
            enum=["auto", "roc_auc", "accuracy", "f1_macro", "log_loss", "r2", "rmse", "mae"],
            title="Metric",
            description="'auto': ROC AUC (binary), accuracy (multiclass), R2 (regression).",
            section="Search",
        ),
        "n_trials": Param(
            20,
            type="integer",
            minimum=0,
            maximum=10000,
            title="Trial budget",
            description="Number of configurations to try; 0 lets loopml choose.",
            section="Search",
        ),
        "n_workers": Param(
            2,
            type="integer",
            minimum=1,
            maximum=16,
            title="Workers",
            description="Trials evaluated at the same time.",
            section="Search",
        ),
        "time_budget_s": Param(
            600,
            type="integer",
            minimum=10,
            maximum=604800,
            title="Time budget (seconds)",
            description="No new trial starts after this.",
            section="Search",
        ),
        "search_space": Param(
            "",
            type="string",
            title="Search space (YAML, optional)",
            description="Leave empty for the default tabular space.",
            section="Search",
        ),
        "family": Param(
            "",
            type="string",
            title="Model family",
            description="Registered model name; empty = the dataset name.",
            section="Registry",
        ),
        "seed": Param(0, type="integer", minimum=0, title="Seed", section="Search"),
        "strategy": Param(
            "auto",
            type="string",
            enum=["auto", "tpe", "gp", "random", "grid", "cmaes"],
            title="Search strategy",
            description="'auto': the formatter picks one from the space, budget and data size, and says why in "
            "the plan_search log.",
            section="Search",
        ),
    },
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
