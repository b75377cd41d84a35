"""Every registration path tags a version the same way (issue #9).

The tabular task estimator (NoCode, HPO with the tabular algorithm, drift_retrain) and the
HPO pipeline's path for any other deployable Estimator (it exports itself to ONNX and is
registered as challenger) share one set of steps and one tag function. In-process on a
real MLflow store and DVC store in a tmp workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl_tasks.core.code_version import code_version
from automl_tasks.core.tags import (
    ALGORITHM_TAG,
    BEST_TRIAL_TAG,
    CODE_VERSION_TAG,
    DAG_RUN_TAG,
    DATASET_URI_TAG,
    DATASET_VERSION_TAG,
    IS_DEFAULT_CONFIG_TAG,
    METRIC_TAG,
    PARENT_VERSION_TAG,
    REFIT_CHECK_REASON_TAG,
    RUN_ID_TAG,
    RUNTIME_TAG,
    SEARCH_SCORE_TAG,
    SPACE_HASH_TAG,
    STUDY_TAG,
    TARGET_TAG,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.deploy.runtime import ONNX_RUNTIME
from automl_tasks.estimators import Estimator, EstimatorResult, TabularEstimator
from automl_tasks.families.aliases import CHALLENGER, CHAMPION, current_alias_version
from automl_tasks.pipelines.registration import TAG_VALUE_LIMIT, tag_version, train_and_register
from tests.family_builder import LINEAR_SPACE, search_and_register

#: the lineage every version carries, whichever estimator and pipeline built it
LINEAGE_KEYS = {
    DATASET_URI_TAG,
    DATASET_VERSION_TAG,
    STUDY_TAG,
    SPACE_HASH_TAG,
    ALGORITHM_TAG,
    DAG_RUN_TAG,
    CODE_VERSION_TAG,
    METRIC_TAG,
    TARGET_TAG,
    BEST_TRIAL_TAG,
    SEARCH_SCORE_TAG,
    IS_DEFAULT_CONFIG_TAG,
    RUN_ID_TAG,
    RUNTIME_TAG,
    "test_roc_auc",
}


class OnnxOnlyEstimator(Estimator):
    """Not the tabular estimator: its model is private and it deploys by exporting itself to
    ONNX, as the digits network does. (It delegates to a tabular model to stay cheap.)"""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._inner = TabularEstimator(**kwargs)

    def train(self) -> None:
        self._inner.train()

    def calculate_score(self) -> EstimatorResult:
        return self._inner.calculate_score()

    def save(self, path: Path) -> str:
        return self._inner.save(path)

    def export_onnx(self, path: Path) -> Path:
        return self._inner.export_onnx(path)


def test_the_tabular_and_the_onnx_paths_tag_a_version_with_the_same_lineage(workspace):
    client = mlflow_client(workspace)
    tabular, study = search_and_register(workspace, "breast_cancer", "paths", LINEAR_SPACE, n_trials=1, tag="t")
    first = dict(client.get_model_version("paths", tabular.version).tags)
    onnx = train_and_register(
        workspace,
        study,
        dag_run_id="hpo-run",
        dataset_version=first[DATASET_VERSION_TAG],
        parent_version=tabular.version,
        estimator_cls=OnnxOnlyEstimator,
        pipeline="hpo_pipeline",
    )
    second = dict(client.get_model_version("paths", onnx.version).tags)

    assert LINEAGE_KEYS <= set(first), LINEAGE_KEYS - set(first)
    assert LINEAGE_KEYS <= set(second), LINEAGE_KEYS - set(second)
    assert set(second) - set(first) == {PARENT_VERSION_TAG}, "the ONNX path writes no key of its own"
    assert second[CODE_VERSION_TAG] == first[CODE_VERSION_TAG] == code_version()
    for key in (DATASET_URI_TAG, DATASET_VERSION_TAG, STUDY_TAG, SPACE_HASH_TAG, BEST_TRIAL_TAG, TARGET_TAG):
        assert second[key] == first[key], key
    assert second[DAG_RUN_TAG] == "hpo-run" and second[RUN_ID_TAG] == onnx.run_id
    # the same lineage is on the final model's MLflow run
    run_tags = client.get_run(onnx.run_id).data.tags
    assert run_tags[CODE_VERSION_TAG] == code_version() and run_tags[STUDY_TAG] == study

    # an estimator other than the tabular one: its own ONNX model, registered as challenger
    assert second[RUNTIME_TAG] == ONNX_RUNTIME and onnx.runtime == ONNX_RUNTIME
    assert onnx.alias == CHALLENGER and onnx.latency_single_ms is None
    assert current_alias_version(client, "paths", CHALLENGER) == onnx.version
    assert current_alias_version(client, "paths", CHAMPION) == tabular.version == "1"
    import mlflow

    model = mlflow.onnx.load_model(onnx.model_uri)
    assert model.graph.input, "the registered model is the ONNX graph"
    assert float(second["test_roc_auc"]) == pytest.approx(onnx.test_score, rel=1e-5)

    # one truncation for every tag value the steps write
    tag_version(client, "paths", onnx.version, {REFIT_CHECK_REASON_TAG: "x" * 6000})
    assert len(client.get_model_version("paths", onnx.version).tags[REFIT_CHECK_REASON_TAG]) == TAG_VALUE_LIMIT
