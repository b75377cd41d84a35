"""The estimator interface and the tabular algorithms, including ONNX export parity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.errors import ExportError
from automl_tasks.data import DatasetStore, bundled_frame
from automl_tasks.deploy.onnx_model import OnnxModel, check_parity
from automl_tasks.estimators import DataSpec, Estimator, TabularEstimator, resolve_metric
from automl_tasks.estimators.metrics import Metric
from automl_tasks.estimators.onnx.conversion import export_pipeline

FAST = {
    "lightgbm": {"model.lightgbm.n_estimators": 40},
    "random_forest": {"model.random_forest.n_estimators": 30, "model.random_forest.max_depth": 8},
    "extra_trees": {"model.extra_trees.n_estimators": 30, "model.extra_trees.max_depth": 0},
    "linear": {"model.linear.C": 1.0},
    "mlp": {"model.mlp.epochs": 30, "model.mlp.hidden_units": 32, "model.mlp.n_layers": 2},
}


def _spec(workspace, name, frame, task_type):
    stored = DatasetStore(workspace.datasets, workspace.dvc_remote).put(name, frame)
    return DataSpec(str(stored.path), "target", task_type)


@pytest.fixture
def mixed_frame():
    """Numeric columns with gaps and a categorical column, binary target."""
    rng = np.random.default_rng(0)
    n = 300
    x1, x2 = rng.normal(size=n), rng.exponential(size=n) * 10
    colour = rng.choice(["red", "green", "blue"], size=n)
    y = ((x1 + (colour == "red") * 1.5 + rng.normal(scale=0.3, size=n)) > 0.5).astype(int)
    x1[rng.choice(n, 20, replace=False)] = np.nan
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "target": y})


def test_estimator_is_abstract():
    with pytest.raises(TypeError):
        Estimator(
            run_epochs=None,
            data=DataSpec("x", "t", "binary"),
            is_trainer=False,
            model_args={},
            metric=Metric("roc_auc"),
        )


@pytest.mark.parametrize("model", sorted(FAST))
def test_each_model_trains_scores_and_exports_with_parity(workspace, mixed_frame, model, tmp_path):
    spec = _spec(workspace, "mixed", mixed_frame, "binary")
    config = {"model": model, "imputation": "q1", "scaling": "log", "categorical_encoding": "onehot", **FAST[model]}
    trainer = TabularEstimator(
        run_epochs=None, data=spec, is_trainer=True, model_args=config, metric=Metric("roc_auc"), output_dir=tmp_path
    )
    result = trainer.run()
    assert 0.7 < result.score <= 1.0, f"{model} scored {result.score}"
    assert result.model_path and result.duration_s > 0
    test = trainer.features_.iloc[trainer.test_rows]
    onnx_model = OnnxModel(export_pipeline(trainer.pipeline_, trainer.schema_, tmp_path / "m.onnx"), trainer.schema_)
    parity = check_parity(trainer.pipeline_, onnx_model, test)
    assert parity.ok and parity.max_abs_diff < 1e-3


@pytest.mark.parametrize("scaling,imputation,encoding", [("zscore", "mean", "ordinal"), ("minmax", "q3", "onehot")])
def test_preprocessing_choices_export(workspace, mixed_frame, scaling, imputation, encoding, tmp_path):
    spec = _spec(workspace, "mixed", mixed_frame, "binary")
    config = {
        "model": "linear",
        "model.linear.C": 0.5,
        "scaling": scaling,
        "imputation": imputation,
        "categorical_encoding": encoding,
    }
    trainer = TabularEstimator(
        run_epochs=None, data=spec, is_trainer=True, model_args=config, metric=Metric("accuracy"), output_dir=tmp_path
    )
    trainer.run()
    onnx_model = OnnxModel(export_pipeline(trainer.pipeline_, trainer.schema_, tmp_path / "m.onnx"), trainer.schema_)
    assert check_parity(trainer.pipeline_, onnx_model, trainer.features_).ok


@pytest.mark.parametrize("model", ["lightgbm", "mlp", "linear"])
def test_regression_and_multiclass(workspace, model, tmp_path):
    for name, task, metric in (("diabetes", "regression", "r2"), ("wine", "multiclass", "accuracy")):
        spec = _spec(workspace, name, bundled_frame(name), task)
        trainer = TabularEstimator(
            run_epochs=None,
            data=spec,
            is_trainer=True,
            model_args={"model": model, "scaling": "zscore", **FAST[model]},
            metric=resolve_metric(metric, task),
            output_dir=tmp_path / name,
        )
        result = trainer.run()
        assert np.isfinite(result.score)
        assert result.score > (0.2 if task == "regression" else 0.8), f"{model} on {name}: {result.score}"
        onnx_model = OnnxModel(
            export_pipeline(trainer.pipeline_, trainer.schema_, tmp_path / f"{name}.onnx"), trainer.schema_
        )
        assert check_parity(trainer.pipeline_, onnx_model, trainer.features_.iloc[trainer.test_rows]).ok


def test_search_trial_scores_on_validation_not_test(workspace, breast_cancer_frame):
    spec = _spec(workspace, "bc", breast_cancer_frame, "binary")
    trial = TabularEstimator(
        run_epochs=None, data=spec, is_trainer=False, model_args={"model": "linear"}, metric=Metric("roc_auc")
    )
    result = trial.run()
    assert result.model_path is None  # only the final trainer saves
    fit_rows, score_rows = trial._rows()
    assert not set(fit_rows) & set(score_rows)
    assert not set(score_rows) & set(trial.test_rows)


def test_parity_failure_is_reported(workspace, mixed_frame, tmp_path):
    spec = _spec(workspace, "mixed", mixed_frame, "binary")
    trainer = TabularEstimator(
        run_epochs=None,
        data=spec,
        is_trainer=True,
        model_args={"model": "linear"},
        metric=Metric("roc_auc"),
        output_dir=tmp_path,
    )
    trainer.run()
    onnx_model = OnnxModel(export_pipeline(trainer.pipeline_, trainer.schema_, tmp_path / "m.onnx"), trainer.schema_)
    other = TabularEstimator(
        run_epochs=None,
        data=spec,
        is_trainer=True,
        model_args={"model": "linear", "model.linear.C": 0.001, "scaling": "minmax"},
        metric=Metric("roc_auc"),
        output_dir=tmp_path / "o",
    )
    other.run()
    with pytest.raises(ExportError, match="disagree"):
        check_parity(other.pipeline_, onnx_model, trainer.features_)


def test_metric_must_fit_the_task():
    assert resolve_metric("auto", "binary").name == "roc_auc"
    assert resolve_metric("rmse", "regression").direction == "minimize"
    with pytest.raises(ValueError, match="does not fit a regression task"):
        resolve_metric("roc_auc", "regression")


def test_metric_gain_is_positive_for_improvement_in_either_direction():
    assert Metric("roc_auc").gain(0.95, 0.90) == pytest.approx(0.05)
    assert Metric("rmse").gain(1.0, 1.5) == pytest.approx(0.5)
    assert Metric("rmse").gain(2.0, 1.5) < 0
