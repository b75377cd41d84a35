"""Trust report of a registered model version (OmniForce §3.1): robustness to noise and to an
adversarial attack, and membership-inference privacy, as MLflow model metrics of the version,
version tags the promotion gate reads, and a plot. The NoCode, HPO and drift_retrain pipelines
measure it for every new version; this DAG measures it for any version, again or later."""

from __future__ import annotations

from airflow.sdk import dag

from operators.forms import form_params
from operators.trust import trust_report


@dag(
    dag_id="trust_report",
    schedule=None,
    catchup=False,
    tags=["loopml", "registry", "trust"],
    doc_md=__doc__,
    params=form_params("trust_report"),
)
def trust_report_dag():
    trust_report()


trust_report_dag()
