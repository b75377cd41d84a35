"""Drift notification: runs on every `loopml_drift_check` asset event and reports the verdict.

drift_check's check_drift task emits one asset event per checked family, its `extra`
holding the verdict (family, status, reasons, MLflow run, stored window). This DAG is
scheduled on that asset: a data-aware consumer that turns each verdict into one log line
(a warning on drift), and the hook where a team adds its own notification.
"""

from __future__ import annotations

from airflow.sdk import dag

from operators.drift import DRIFT_ASSET, notify_drift


@dag(
    dag_id="drift_notify",
    schedule=[DRIFT_ASSET],
    catchup=False,
    is_paused_upon_creation=False,
    tags=["loopml", "monitoring"],
    doc_md=__doc__,
)
def drift_notify():
    notify_drift()


drift_notify()
