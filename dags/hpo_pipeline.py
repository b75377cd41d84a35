"""HPO pipeline (OmniForce Figure 3b) for any registered algorithm.

start -> (smoke job_estimator || smoke workers) -> smoke_report -> (search: job_estimator
|| workers) || (default: job_estimator || workers) -> task_estimator -> advisor -> end.
The smoke branch runs two cheap trials and stops the run with the errors if none
completes; the default branch scores the algorithm's default hyperparameters on the same
splits and seed as the search; the advisor re-scores both on several split seeds and
says whether the search was worth it.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

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

STRATEGY_CHOICES = ["auto", "tpe", "gp", "random", "grid", "cmaes", "hyperband", "asha"]


@dag(
    dag_id="hpo_pipeline",
    schedule=None,
    catchup=False,
    max_active_runs=2,
    tags=["loopml", "hpo"],
    doc_md=__doc__,
    params={
        "algorithm": Param(
            "tabular",
            type="string",
            title="Algorithm",
            description="A built-in or registered algorithm (tabular, digits_cnn, ...) or a folder with algorithm.yaml.",
            section="Algorithm",
        ),
        "dataset": Param(
            "breast_cancer",
            type="string",
            title="Dataset",
            description="Bundled name or CSV/Parquet path.",
            section="Data",
        ),
        "target": Param("target", type="string", title="Target column", section="Data"),
        "task_type": Param(
            "auto",
            type="string",
            enum=["auto", "binary", "multiclass", "regression"],
            title="Task type",
            section="Data",
        ),
        "metric": Param(
            "auto",
            type="string",
            enum=["auto", "roc_auc", "accuracy", "f1_macro", "log_loss", "r2", "rmse", "mae"],
            title="Metric",
            description="Its direction follows from it (log_loss, rmse, mae are minimised).",
            section="Search",
        ),
        "strategy": Param("auto", type="string", enum=STRATEGY_CHOICES, title="Search strategy", section="Search"),
        "n_trials": Param(
            20,
            type="integer",
            minimum=0,
            maximum=10000,
            title="Trial budget",
            description="0 lets the formatter choose it from the data size (or the grid's size).",
            section="Budget",
        ),
        "time_budget_s": Param(600, type="integer", minimum=10, title="Time budget (seconds)", section="Budget"),
        "max_epochs": Param(
            0,
            type="integer",
            minimum=0,
            title="Fidelity budget (epochs per trial)",
            description="For algorithms with a fidelity; 0 = each configuration's own.",
            section="Budget",
        ),
        "n_workers": Param(2, type="integer", minimum=1, maximum=16, title="Workers", section="Budget"),
        "repeats": Param(
            3, type="integer", minimum=2, maximum=20, title="Split seeds for search vs default", section="Search"
        ),
        "family": Param(
            "", type="string", title="Model family", description="Empty = the dataset name.", section="Registry"
        ),
        "seed": Param(0, type="integer", minimum=0, title="Seed", section="Search"),
    },
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
