"""Drift check: is the data a family's champion sees still the data it was trained on?

Scheduled (hourly tick; each family is checked when its `check_every_hours` has passed,
daily by default; no tick until the workspace has a family) or triggered for one family from the form. Per family:
select_families -> check_drift (Evidently data drift per column, prediction drift and,
with labels, concept drift; HTML report and numbers in MLflow; an asset event) ->
retrain_requests -> trigger_retrain (drift_retrain for each drifted family).
No drift: the run ends green and its log says so.

Empty form fields use the family's own settings (registered-model tags `loopml.drift.*`,
saved by ticking "save as the family's settings").
"""

from __future__ import annotations

import os

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag

from automl_tasks.core.settings import Workspace
from automl_tasks.monitoring.schedule_gate import has_model_family
from operators.drift import check_drift, retrain_requests, select_families

# "none" turns the schedule off (manual checks only)
SCHEDULE = os.environ.get("LOOPML_DRIFT_SCHEDULE", "@hourly")
# no tick on a workspace without a family: nothing to check, and one writer less on the
# embedded SQLite metadata DB during a first run (docs/DESIGN.md, "Embedded metadata DB")
SCHEDULED = SCHEDULE.lower() != "none" and has_model_family(Workspace.from_env())


@dag(
    dag_id="drift_check",
    schedule=SCHEDULE if SCHEDULED else None,
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["loopml", "monitoring"],
    doc_md=__doc__,
    params={
        "family": Param(
            "",
            type="string",
            title="Model family",
            description="Empty: every family whose check is enabled and due (what the schedule does).",
            section="What to check",
        ),
        "data_path": Param(
            "",
            type="string",
            title="New data file (optional)",
            description="CSV/Parquet to compare with the training data instead of the serving inference log. "
            "A target column makes concept drift measurable.",
            section="What to check",
        ),
        "enabled": Param(None, type=["null", "boolean"], title="Scheduled checks on", section="Schedule (per family)"),
        "check_every_hours": Param(
            None,
            type=["null", "number"],
            minimum=1,
            title="Check every (hours)",
            description="The hourly tick checks the family when this much time has passed. Default 24.",
            section="Schedule (per family)",
        ),
        "window_hours": Param(
            None, type=["null", "number"], minimum=0.01, title="Window (hours of inference log)", section="Thresholds"
        ),
        "min_rows": Param(None, type=["null", "integer"], minimum=1, title="Minimum rows", section="Thresholds"),
        "drift_share": Param(
            None,
            type=["null", "number"],
            minimum=0.01,
            maximum=1,
            title="Drifted-column share that means drift",
            description="Default 0.3.",
            section="Thresholds",
        ),
        "column_threshold": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            title="Per-column test threshold",
            description="Empty: Evidently's default for each test (p-value 0.05 or distance 0.1).",
            section="Thresholds",
        ),
        "performance_drop": Param(
            None,
            type=["null", "number"],
            minimum=0,
            title="Metric drop that means concept drift",
            description="Default 0.05.",
            section="Thresholds",
        ),
        "auto_retrain": Param(None, type=["null", "boolean"], title="Retrain on drift", section="Retraining"),
        "save_settings": Param(
            False, type="boolean", title="Save the thresholds above as the family's settings", section="Thresholds"
        ),
        "n_trials": Param(
            None, type=["null", "integer"], minimum=1, title="Retrain trial budget", section="Retraining"
        ),
        "n_workers": Param(
            None, type=["null", "integer"], minimum=1, maximum=16, title="Retrain workers", section="Retraining"
        ),
        "time_budget_s": Param(
            None, type=["null", "integer"], minimum=10, title="Retrain time budget (s)", section="Retraining"
        ),
        "combine": Param(
            None,
            type=["null", "string"],
            enum=[None, "reference_plus_recent", "recent_only"],
            title="Retraining data",
            section="Retraining",
        ),
        "margin": Param(None, type=["null", "number"], minimum=0, title="Promotion margin", section="Retraining"),
        "max_latency_ratio": Param(
            None, type=["null", "number"], minimum=1, title="Allowed latency ratio", section="Retraining"
        ),
        "max_size_ratio": Param(
            None, type=["null", "number"], minimum=1, title="Allowed model size ratio", section="Retraining"
        ),
    },
)
def drift_check():
    results = check_drift.expand(family=select_families())
    TriggerDagRunOperator.partial(
        task_id="trigger_retrain", trigger_dag_id="drift_retrain", wait_for_completion=False
    ).expand(conf=retrain_requests(results))


drift_check()
