"""Promote a model family's version to champion, or roll back to the previous champion.

auto: the challenger must beat the champion on the family's evaluation data by the margin
and stay within the latency and size ratios; manual: the version becomes champion and the
comparison is recorded; rollback: champion goes back to the version before it.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from operators.registry import promotion_gate


@dag(
    dag_id="promote_model",
    schedule=None,
    catchup=False,
    tags=["loopml", "registry"],
    doc_md=__doc__,
    params={
        "family": Param("breast_cancer", type="string", title="Model family", minLength=1),
        "version": Param(
            "latest_challenger",
            type=["string", "integer"],
            title="Version",
            description="A version number, or 'latest_challenger'. Ignored for rollback.",
        ),
        "action": Param("auto", type="string", enum=["auto", "manual", "rollback"], title="Action"),
        "margin": Param(0.0, type="number", minimum=0, title="Required improvement (auto)"),
        "max_latency_ratio": Param(1.5, type="number", minimum=1, title="Allowed latency ratio (auto)"),
        "max_size_ratio": Param(2.0, type="number", minimum=1, title="Allowed model size ratio (auto)"),
    },
)
def promote_model():
    promotion_gate()


promote_model()
