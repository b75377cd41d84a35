"""Active learning: choose the rows of a model family that its champion is least sure of
(from its logged requests or a given pool) as a labelling batch. A person labels them on
loopml's Label page; the labels become a dataset version that drift_retrain learns from,
and the new version goes through the promotion gate."""

from __future__ import annotations

from airflow.sdk import dag

from operators.active_learning import select_batch
from operators.forms import form_params


@dag(
    dag_id="active_learning",
    schedule=None,
    catchup=False,
    tags=["loopml", "monitoring"],
    doc_md=__doc__,
    params=form_params("active_learning"),
)
def active_learning():
    select_batch()


active_learning()
