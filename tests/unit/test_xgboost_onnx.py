"""loopml's XGBoost models and ONNX converter (estimators/xgboost_models.py,
estimators/onnx/xgboost_trees.py): any class labels in and out, XGBoost's float32 comparison
of the features, its missing-value routes, the trees up to the best iteration, multiclass,
and a clear refusal of an objective it does not know. Parity through whole pipelines (every
label kind, scaling and encoding) is tested in test_export_property.py."""

from __future__ import annotations

import numpy as np
import pytest

from automl_tasks.core.errors import ExportError
from automl_tasks.estimators.onnx.xgboost_trees import xgboost_ensemble
from automl_tasks.estimators.tabular import fit_early_stopped, make_pipeline
from automl_tasks.estimators.xgboost_models import XGBoostClassifier, XGBoostRegressor
from tests.unit.test_lightgbm_onnx import _onnx_outputs, _table


def test_the_classifier_takes_and_gives_back_any_class_labels():
    x, y = _table()
    labels = np.where(y > np.median(y), "approved", "denied")
    model = XGBoostClassifier(n_estimators=10).fit(x, labels, eval_set=[(x[:50], labels[:50])], verbose=False)
    assert list(model.classes_) == ["approved", "denied"]
    assert set(model.predict(x)) == {"approved", "denied"}
    assert (model.predict(x) == model.classes_[model.predict_proba(x).argmax(axis=1)]).all()
    refit = XGBoostClassifier(n_estimators=10).fit(x, (y > 0).astype(int) * 2 + 1)  # a second fit: labels anew
    assert list(refit.classes_) == [1, 3]


def test_features_are_compared_as_float32_as_xgboost_does():
    """Values 0.01 apart near 1e6 are the same float32 (its step there is 0.0625): XGBoost
    splits on the float32 values, so rows whose float64 values straddle its split value but
    whose float32 values do not must go the same way in ONNX."""
    x, y = _table()
    model = XGBoostRegressor(n_estimators=30, max_depth=6, tree_method="hist").fit(x, y)
    (predicted,) = _onnx_outputs(model, x)
    np.testing.assert_allclose(predicted.ravel(), model.predict(x), rtol=1e-5, atol=1e-5)
    _, _, attributes = xgboost_ensemble(model)
    from onnx import numpy_helper

    values = numpy_helper.to_array(attributes["nodes_values_as_tensor"])
    splits = np.asarray(attributes["nodes_modes"]) == "BRANCH_LT"
    assert (values[splits] == values[splits].astype(np.float32)).all()  # XGBoost's own float32 values
    # the rows just below each split value on the 1e6 feature: float64 below, float32 not
    third = np.asarray(attributes["nodes_featureids"])[splits] == 2
    near = values[splits][third]
    probe = np.tile(x[:1], (len(near), 1))
    probe[:, 2] = np.nextafter(near, -np.inf)
    assert (probe[:, 2].astype(np.float32) == near.astype(np.float32)).any()
    (at_splits,) = _onnx_outputs(model, probe)
    np.testing.assert_allclose(at_splits.ravel(), model.predict(probe), rtol=1e-5, atol=1e-5)


def test_missing_values_follow_the_nodes_default_direction():
    x, y = _table(1)
    x[::4, 0] = np.nan
    labels = (y > np.nanmedian(y)).astype(int)
    model = XGBoostClassifier(n_estimators=30).fit(x, labels)
    probe = np.vstack([x[:60], [[np.nan, 1.0, 1e6 + 1.5]]])
    label, proba = _onnx_outputs(model, probe)
    np.testing.assert_allclose(proba, model.predict_proba(probe), atol=1e-6)
    assert (label == model.predict(probe)).all()


def test_an_early_stopped_model_exports_the_trees_its_predict_uses():
    """XGBoost keeps the trees grown after the best iteration; `predict` ignores them, and so
    must the export (with them, the ONNX model would predict something else)."""
    pipeline, frame, best = early_stopped_pipeline("xgboost")
    model = pipeline.steps[-1][1]
    assert best == model.best_iteration + 1 and model.get_booster().num_boosted_rounds() > best
    _, _, attributes = xgboost_ensemble(model)
    assert max(attributes["nodes_treeids"]) == best - 1
    assert_export_predicts_as_the_pipeline(pipeline, frame)


def early_stopped_pipeline(model: str):
    """(pipeline, its rows, the best tree count) of `model` at learning rate 0.3 on a noisy
    regression table, fitted by the search's early stopping (which stops long before the cap)."""
    from sklearn.model_selection import train_test_split

    x, y = _table(3)
    y = y + np.random.default_rng(3).normal(scale=3.0, size=len(y))  # noisy: stops early
    fit, stop = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0)
    pipeline = make_pipeline({"model": model, f"model.{model}.learning_rate": 0.3}, _schema(x), "regression")
    frame = _frame(x)
    return pipeline, frame, fit_early_stopped(pipeline, frame.iloc[fit], y[fit], frame.iloc[stop], y[stop])


def assert_export_predicts_as_the_pipeline(pipeline, frame, atol: float = 1e-5) -> None:
    """The pipeline's model exported alone, on its preprocessed rows, predicts as the pipeline."""
    features = pipeline.steps[0][1].transform(frame)
    (predicted,) = _onnx_outputs(pipeline.steps[-1][1], np.asarray(features, dtype=np.float64))
    np.testing.assert_allclose(predicted.ravel(), pipeline.predict(frame), rtol=1e-5, atol=atol)


def test_a_multiclass_model_with_text_labels_exports_with_parity():
    x, y = _table(2)
    classes = np.array(["low", "mid", "high"])[np.digitize(y, np.quantile(y, [0.33, 0.66]))]
    model = XGBoostClassifier(n_estimators=20, max_leaves=8, grow_policy="lossguide").fit(x, classes)
    label, proba = _onnx_outputs(model, x)
    np.testing.assert_allclose(proba, model.predict_proba(x), atol=1e-5)
    assert (label == model.predict(x)).all()


def test_an_objective_without_a_converter_is_refused_by_name():
    x, y = _table()
    model = XGBoostRegressor(n_estimators=5, objective="count:poisson").fit(x, np.abs(y))
    with pytest.raises(ExportError, match="count:poisson"):
        xgboost_ensemble(model)


def _frame(x: np.ndarray):
    import pandas as pd

    return pd.DataFrame(x, columns=["a", "b", "c"])


def _schema(x: np.ndarray):
    from automl_tasks.estimators.features import FeatureSchema

    return FeatureSchema.infer(_frame(x))
