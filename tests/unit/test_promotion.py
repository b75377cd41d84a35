"""The promotion gate on a real MLflow registry: rule, record, history, rollback, races."""

from __future__ import annotations

import json
import threading

import mlflow
import pytest

from automl_tasks.core.errors import ConfigurationError, LoopmlError
from automl_tasks.core.tags import EVAL_SCORE_TAG, EVAL_URI_TAG
from automl_tasks.core.tracking import ensure_experiment, mlflow_client
from automl_tasks.estimators.metrics import Metric
from automl_tasks.families.aliases import current_alias_version
from automl_tasks.families.promotion import GateConfig, champion_history, judge, promote, rollback

AUC, RMSE = Metric("roc_auc"), Metric("rmse")


def tags(score, latency=1.0, size=100.0, uri="dataset://f.eval@1", metric="roc_auc"):
    return {
        EVAL_SCORE_TAG: str(score),
        EVAL_URI_TAG: uri,
        "latency_single_ms": str(latency),
        "onnx_size_kb": str(size),
        "loopml.metric": metric,
    }


@pytest.mark.parametrize(
    ("metric", "new", "old", "margin", "promote_it"),
    [
        (AUC, 0.95, 0.94, 0.0, True),
        (AUC, 0.94, 0.94, 0.0, False),
        (AUC, 0.945, 0.94, 0.01, False),
        (AUC, 0.96, 0.94, 0.01, True),
        (RMSE, 1.0, 2.0, 0.0, True),
        (RMSE, 2.5, 2.0, 0.0, False),
    ],
)
def test_score_rule_with_margin(metric, new, old, margin, promote_it):
    result = judge(tags(new), tags(old), metric, GateConfig(margin=margin))
    assert result.promote is promote_it
    assert result.candidate_score == new and result.champion_score == old


def test_guard_metrics_block_a_better_but_slower_or_bigger_model():
    assert not judge(tags(0.99, latency=3.0), tags(0.9, latency=1.0), AUC, GateConfig(max_latency_ratio=2)).promote
    assert "latency" in judge(tags(0.99, latency=3.0), tags(0.9), AUC, GateConfig()).reason
    assert not judge(tags(0.99, size=500), tags(0.9, size=100), AUC, GateConfig(max_size_ratio=2)).promote


def test_different_evaluation_data_is_not_comparable():
    result = judge(tags(0.99, uri="dataset://a@1"), tags(0.5, uri="dataset://b@2"), AUC, GateConfig())
    assert not result.promote and "same evaluation data" in result.reason


def test_gate_config_is_validated():
    with pytest.raises(ConfigurationError, match="'margin'"):
        GateConfig(margin=-1)
    with pytest.raises(ConfigurationError, match="max_latency_ratio"):
        GateConfig(max_latency_ratio=0.5)


def _register(workspace, family, score):
    client = mlflow_client(workspace)
    # an experiment whose artifact root is inside the workspace: the default experiment's is
    # ./mlruns in the current directory, which would write run output into the checkout
    with mlflow.start_run(experiment_id=ensure_experiment(workspace, family)):
        info = mlflow.pyfunc.log_model(
            name="m", python_model=_Constant(), registered_model_name=family, pip_requirements=["mlflow"]
        )
    version = str(info.registered_model_version)
    for key, value in tags(score).items():
        client.set_model_version_tag(family, version, key, value)
    return version


class _Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return [0] * len(model_input)


def test_promote_rollback_and_history(workspace):
    family = "fam"
    v1 = _register(workspace, family, 0.90)
    assert promote(workspace, family, v1, triggered_by="test")["promoted"]
    v2 = _register(workspace, family, 0.80)
    decision = promote(workspace, family, v2, triggered_by="alice")
    client = mlflow_client(workspace)
    assert not decision["promoted"]
    assert current_alias_version(client, family, "champion") == v1
    assert current_alias_version(client, family, "challenger") == v2
    recorded = client.get_model_version(family, v2).tags
    assert recorded["loopml.promotion.decision"] == "rejected"
    assert recorded["loopml.promotion.triggered_by"] == "alice"
    assert float(recorded["loopml.promotion.champion_score"]) == pytest.approx(0.9)

    assert promote(workspace, family, "latest_challenger", mode="manual", triggered_by="bob")["promoted"]
    assert current_alias_version(client, family, "champion") == v2
    assert current_alias_version(client, family, "challenger") is None
    assert champion_history(client, family) == [v1, v2]

    assert rollback(workspace, family, triggered_by="carol")["champion"] == v1
    assert current_alias_version(client, family, "champion") == v1
    assert client.get_model_version(family, v2).tags["loopml.rolled_back"] == "true"
    with pytest.raises(LoopmlError, match="no earlier champion"):
        rollback(workspace, family)


def test_racing_promotions_leave_alias_and_history_consistent(workspace):
    family = "race"
    base = _register(workspace, family, 0.5)
    promote(workspace, family, base, mode="manual")
    versions = [_register(workspace, family, 0.6 + i / 100) for i in range(6)]
    errors = []

    def go(version):
        try:
            promote(workspace, family, version, mode="manual", triggered_by=f"thread-{version}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    client = mlflow_client(workspace)
    history = json.loads(client.get_registered_model(family).tags["loopml.champion_history"])
    assert sorted(history[1:], key=int) == sorted(versions, key=int) and len(history) == 7
    assert current_alias_version(client, family, "champion") == history[-1], "alias matches the last promotion"
