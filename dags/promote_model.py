"""Promote a model family's version to champion, or roll back to the previous champion.

auto: the challenger must beat the champion on the family's evaluation data by the margin
and stay within the latency and size ratios; manual: once a person approves it (Airflow's
human-in-the-loop approval, under "Required actions"), the version becomes champion and the
comparison, the approver and the time are recorded; rollback: champion goes back to the
version before it.
"""

from __future__ import annotations

from airflow.sdk import dag

from operators.forms import form_params
from operators.registry import approval, needs_approval, promotion_gate


@dag(
    dag_id="promote_model",
    schedule=None,
    catchup=False,
    tags=["loopml", "registry"],
    doc_md=__doc__,
    params=form_params("promote_model"),
)
def promote_model():
    route, approve, gate = needs_approval(), approval(), promotion_gate()
    route >> [approve, gate]
    approve >> gate


promote_model()
