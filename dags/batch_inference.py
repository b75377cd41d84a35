"""Batch inference: predict a dataset version with a model family's champion (or a version)
and store the predictions as a new dataset version and an MLflow artifact."""

from __future__ import annotations

from airflow.sdk import dag

from operators.forms import form_params
from operators.registry import batch_predict


@dag(
    dag_id="batch_inference",
    schedule=None,
    catchup=False,
    tags=["loopml", "serving"],
    doc_md=__doc__,
    params=form_params("batch_inference"),
)
def batch_inference():
    batch_predict()


batch_inference()
