"""loopml's CatBoost models and ONNX converter (estimators/catboost_models.py,
estimators/onnx/catboost_trees.py): any class labels in and out (also after pickling), the
oblivious trees' leaf order, CatBoost's float32 comparison of the features, early stopping
in the search and the trees the export holds, multiclass, and a clear refusal of a loss it
does not know. Parity through whole pipelines (every label kind, scaling and encoding) is
tested in test_export_property.py."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from automl_tasks.core.errors import ExportError
from automl_tasks.estimators.catboost_models import CatBoostClassifier, CatBoostRegressor
from automl_tasks.estimators.onnx.catboost_trees import catboost_ensemble
from automl_tasks.estimators.tabular import MAX_BOOSTING_ROUNDS
from tests.unit.test_lightgbm_onnx import _onnx_outputs, _table
from tests.unit.test_xgboost_onnx import assert_export_predicts_as_the_pipeline, early_stopped_pipeline

QUIET = {"verbose": 0, "allow_writing_files": False, "thread_count": 1, "random_seed": 0}


def test_the_classifier_takes_and_gives_back_any_class_labels_also_after_pickling():
    x, y = _table()
    labels = np.where(y > np.median(y), "approved", "denied")
    model = CatBoostClassifier(n_estimators=10, **QUIET).fit(x, labels, eval_set=[(x[:50], labels[:50])])
    assert list(model.classes_) == ["approved", "denied"]
    assert (model.predict(x) == model.classes_[model.predict_proba(x).argmax(axis=1)]).all()
    assert set(model.predict(x)) == {"approved", "denied"}
    restored = pickle.loads(pickle.dumps(model))
    assert list(restored.classes_) == ["approved", "denied"]
    np.testing.assert_array_equal(restored.predict_proba(x), model.predict_proba(x))
    # integer labels CatBoost would order as text ("10" before "9") keep their numeric order
    numbers = np.where(y > np.median(y), 10, 9)
    refit = CatBoostClassifier(n_estimators=10, **QUIET).fit(x, numbers)
    assert list(refit.classes_) == [9, 10]
    assert (refit.predict_proba(x)[:, 1] > 0.5).mean() == pytest.approx((refit.predict(x) == 10).mean())


@pytest.mark.parametrize("depth", [1, 3, 6])
def test_regression_trees_export_with_parity(depth):
    """Every leaf order of an oblivious tree: depth 1 (one split), 3 and 6 levels."""
    x, y = _table()
    model = CatBoostRegressor(n_estimators=40, depth=depth, **QUIET).fit(x, y)
    (predicted,) = _onnx_outputs(model, x)
    np.testing.assert_allclose(predicted.ravel(), model.predict(x), rtol=1e-5, atol=1e-4)


def test_features_are_compared_as_float32_as_catboost_does():
    """Rows just below each border in float64 but equal to it in float32 go CatBoost's way
    (the feature near 1e6 has float32 steps of 0.0625)."""
    x, y = _table()
    model = CatBoostRegressor(n_estimators=30, depth=4, **QUIET).fit(x, y)
    _, _, attributes = catboost_ensemble(model)
    from onnx import numpy_helper

    values = numpy_helper.to_array(attributes["nodes_values_as_tensor"])
    splits = np.asarray(attributes["nodes_modes"]) == "BRANCH_LEQ"
    assert (values[splits] == values[splits].astype(np.float32)).all()  # CatBoost's own float32 borders
    third = np.asarray(attributes["nodes_featureids"])[splits] == 2
    near = np.unique(values[splits][third])
    probe = np.tile(x[:1], (2 * len(near), 1))
    probe[: len(near), 2] = np.nextafter(near, -np.inf)
    probe[len(near) :, 2] = np.nextafter(near, np.inf)
    assert (probe[:, 2].astype(np.float32) == np.tile(near, 2).astype(np.float32)).any()
    (at_borders,) = _onnx_outputs(model, probe)
    np.testing.assert_allclose(at_borders.ravel(), model.predict(probe), rtol=1e-5, atol=1e-4)


def test_a_multiclass_model_with_text_labels_exports_with_parity():
    x, y = _table(2)
    classes = np.array(["low", "mid", "high"])[np.digitize(y, np.quantile(y, [0.33, 0.66]))]
    model = CatBoostClassifier(n_estimators=30, depth=4, **QUIET).fit(x, classes)
    label, proba = _onnx_outputs(model, x)
    np.testing.assert_allclose(proba, model.predict_proba(x), atol=1e-5)
    assert (label == model.predict(x)).all()


def test_a_binary_model_exports_with_parity():
    x, y = _table(1)
    labels = (y > np.median(y)).astype(int)
    model = CatBoostClassifier(n_estimators=30, **QUIET).fit(x, labels)
    label, proba = _onnx_outputs(model, x)
    np.testing.assert_allclose(proba, model.predict_proba(x), atol=1e-5)
    assert (label == model.predict(x)).all()


def test_early_stopping_finds_the_tree_count_and_the_export_holds_those_trees():
    """The search's early stopping keeps the trees up to the best iteration (CatBoost drops
    the later ones) and reports their count; the export holds exactly them."""
    pipeline, frame, best = early_stopped_pipeline("catboost")
    model = pipeline.steps[-1][1]
    assert best < MAX_BOOSTING_ROUNDS and model.tree_count_ == best == model.get_best_iteration() + 1
    _, _, attributes = catboost_ensemble(model)
    assert max(attributes["nodes_treeids"]) == best - 1
    assert_export_predicts_as_the_pipeline(pipeline, frame, atol=1e-4)


def test_a_loss_without_a_converter_is_refused_by_name():
    x, y = _table()
    model = CatBoostRegressor(n_estimators=5, loss_function="Poisson", **QUIET).fit(x, np.abs(y).round())
    with pytest.raises(ExportError, match="Poisson"):
        catboost_ensemble(model)
