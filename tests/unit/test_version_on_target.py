"""A registered version is placed on its deployment target and served by that engine (issue #12).

In-process on a real MLflow store: the version records the target, the engine and its
verdict as tags, and latency, size and parity as MLflow 3 model metrics; the predictor
(BentoML service and batch inference) runs it on that engine. A model the target's engine
cannot build stays on ONNX Runtime, and the verdict says why."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from automl_tasks.core.tags import DEPLOY_ENGINE_TAG, DEPLOY_TARGET_TAG, DEPLOY_VERDICT_TAG, RUNTIME_TAG
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.data import bundled_frame
from automl_tasks.deploy.runtime import ONNX_RUNTIME, Deployment, on_target
from automl_tasks.deploy.targets import get_target
from automl_tasks.estimators.features import feature_frame
from automl_tasks.families.artifacts import model_metrics_of
from automl_tasks.families.loading import load_predictor
from tests.family_builder import LINEAR_SPACE, search_and_register
from tests.tabular_models import fitted_estimator, small_table


def _rows(n: int = 20) -> pd.DataFrame:
    return bundled_frame("breast_cancer").drop(columns="target").head(n)


def test_a_version_on_edge_cpu_is_measured_there_and_served_by_openvino(workspace):
    registered, _ = search_and_register(
        workspace, "breast_cancer", "edge", LINEAR_SPACE, n_trials=1, tag="edge", deploy_target="edge-cpu"
    )
    version = mlflow_client(workspace).get_model_version("edge", registered.version)
    assert version.tags[RUNTIME_TAG] == "openvino" == registered.runtime
    assert version.tags[DEPLOY_TARGET_TAG] == "edge-cpu" and version.tags[DEPLOY_ENGINE_TAG] == "openvino"
    assert version.tags[DEPLOY_VERDICT_TAG].startswith("openvino: ok"), version.tags[DEPLOY_VERDICT_TAG]

    logged = model_metrics_of(version)
    for key in ("deploy_latency_p50_ms_b1", "deploy_latency_p99_ms_b32", "deploy_model_size_kb"):
        assert logged[key] > 0, (key, logged)
    assert logged["deploy_parity_ok"] == 1.0

    predictor = load_predictor(workspace, "edge")
    assert predictor.runtime == "openvino" and predictor.onnx_model.engine == "openvino"
    native = mlflow.sklearn.load_model(registered.model_uri)
    features = feature_frame(_rows(), predictor.schema)
    labels, proba = predictor.predict_fn(features)
    np.testing.assert_array_equal(labels, native.predict(features))
    np.testing.assert_allclose(proba, native.predict_proba(features), atol=1e-4)


def test_a_version_the_target_engine_cannot_build_stays_on_onnx_runtime_with_the_reason(tmp_path):
    """The search keeps such models out (infeasible trials); the registration's own check
    still never serves a build that failed: the forest stays on ONNX Runtime."""
    frame = small_table("multiclass")
    frame.to_parquet(tmp_path / "t.parquet")
    forest = {"model": "random_forest", "n_estimators": 5, "max_depth": 4, "min_samples_leaf": 1, "max_features": 1.0}
    estimator = fitted_estimator(tmp_path / "t.parquet", "multiclass", {"categorical_encoding": "ordinal", **forest})
    onnx_path = estimator.export_onnx(tmp_path / "forest.onnx")
    exported = Deployment(ONNX_RUNTIME, onnx_path, None, {})
    placed = on_target(exported, get_target("edge-cpu"), estimator.onnx_feed(frame.head(8)))
    assert placed.runtime == ONNX_RUNTIME
    assert placed.tags()[RUNTIME_TAG] == ONNX_RUNTIME and placed.tags()[DEPLOY_TARGET_TAG] == "edge-cpu"
    verdict = placed.tags()[DEPLOY_VERDICT_TAG]
    assert verdict.startswith("openvino: failed") and "TreeEnsembleClassifier" in verdict, verdict
    assert placed.target_metrics["deploy_parity_ok"] == 0.0


def test_a_version_without_a_target_is_measured_on_cloud_cpu(workspace):
    registered, _ = search_and_register(workspace, "breast_cancer", "plain", LINEAR_SPACE, n_trials=1, tag="plain")
    version = mlflow_client(workspace).get_model_version("plain", registered.version)
    assert version.tags[DEPLOY_TARGET_TAG] == "cloud-cpu" and version.tags[RUNTIME_TAG] == "onnxruntime"
    logged = set(model_metrics_of(version))
    assert {"deploy_latency_p50_ms_b1", "deploy_latency_p50_ms_b32", "deploy_parity_ok"} <= logged
