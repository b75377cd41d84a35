"""Batch inference: predict a dataset version with a model family's champion (or a version)
and store the predictions as a new dataset version and an MLflow artifact."""

from __future__ import annotations

from airflow.sdk import Param, dag

from operators.registry import batch_predict


@dag(
    dag_id="batch_inference",
    schedule=None,
    catchup=False,
    tags=["loopml", "serving"],
    doc_md=__doc__,
    params={
        "family": Param("breast_cancer", type="string", title="Model family", minLength=1),
        "dataset": Param(
            "breast_cancer",
            type="string",
            title="Dataset",
            description="dataset://NAME@VERSION, a bundled name or a CSV/Parquet path",
        ),
        "model": Param("champion", type="string", title="Model", description="An alias or a version number"),
    },
)
def batch_inference():
    batch_predict()


batch_inference()
