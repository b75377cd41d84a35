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
from airflow.sdk import dag

from automl_tasks.core.settings import Workspace
from automl_tasks.monitoring.schedule_gate import has_model_family
from operators.drift import check_drift, retrain_requests, select_families
from operators.forms import form_params

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
    params=form_params("drift_check"),
)
def drift_check():
    results = check_drift.expand(family=select_families())
    TriggerDagRunOperator.partial(
        task_id="trigger_retrain", trigger_dag_id="drift_retrain", wait_for_completion=False
    ).expand(conf=retrain_requests(results))


drift_check()
