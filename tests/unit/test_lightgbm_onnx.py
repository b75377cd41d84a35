"""loopml's LightGBM ONNX converter (estimators/onnx/lightgbm_trees.py): the booster's own
float64 thresholds and leaf values, its missing-value routes, multiclass and single-leaf
trees, a log link, and a clear refusal of an objective it does not know. Parity through whole pipelines (every
label kind, scaling and encoding, unseen categories) is tested in test_export_property.py."""

from __future__ import annotations

import lightgbm
import numpy as np
import onnxruntime
import pytest

from automl_tasks.core.errors import ExportError
from automl_tasks.estimators.onnx.conversion import TARGET_OPSET, _declare_inferred_output_types
from automl_tasks.estimators.onnx.converters import register_converters
from automl_tasks.estimators.onnx.lightgbm_trees import lightgbm_ensemble

ROWS = 600


def _onnx_outputs(model, x: np.ndarray) -> list[np.ndarray]:
    """The bare model converted by skl2onnx with loopml's converters, run on float64 `x`."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    register_converters()
    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    onx = convert_sklearn(
        model, initial_types=[("x", DoubleTensorType([None, x.shape[1]]))], options=options, target_opset=TARGET_OPSET
    )
    _declare_inferred_output_types(onx)
    session = onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def _table(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [rng.normal(size=ROWS), rng.integers(0, 40, ROWS) * 0.25, 1e6 + rng.integers(0, 400, ROWS) * 0.01]
    )
    return x, x[:, 0] + np.sin(x[:, 1]) + np.cos(x[:, 2] * 3.0) + 0.1 * rng.normal(size=ROWS)


def test_thresholds_and_leaf_values_are_the_boosters_own_float64_values():
    x, y = _table()
    model = lightgbm.LGBMRegressor(n_estimators=20, num_leaves=16, verbose=-1).fit(x, y)
    _, outputs, attributes = lightgbm_ensemble(model)
    frame = model.booster_.trees_to_dataframe()
    splits, leaves = frame[frame.split_feature.notna()], frame[frame.split_feature.isna()]
    modes = np.asarray(attributes["nodes_modes"])
    from onnx import numpy_helper

    values = numpy_helper.to_array(attributes["nodes_values_as_tensor"])
    weights = numpy_helper.to_array(attributes["target_weights_as_tensor"])
    assert values.dtype == weights.dtype == np.float64 and outputs == 1
    # values 0.01 apart near 1e6 have no float32 between them: only float64 keeps these splits
    assert sorted(values[modes == "BRANCH_LEQ"]) == sorted(splits.threshold.astype(np.float64))
    assert sorted(weights) == sorted(leaves.value.astype(np.float64))
    (predicted,) = _onnx_outputs(model, x)
    np.testing.assert_allclose(predicted.ravel(), model.predict(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("use_missing", [True, False])
def test_missing_values_go_where_lightgbm_sends_them(use_missing):
    """Fitted outside loopml's pipeline (which imputes first): NaN follows the node's default
    direction, or without missing handling is read as 0.0, as in LightGBM."""
    x, y = _table(1)
    x[::5, 0] = np.nan
    labels = (y > np.nanmedian(y)).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=30, use_missing=use_missing, verbose=-1).fit(x, labels)
    probe = np.vstack([x[:50], [[np.nan, 1.0, 1e6 + 1.5], [0.0, 1.0, 1e6 + 1.5]]])
    label, proba = _onnx_outputs(model, probe)
    np.testing.assert_allclose(proba, model.predict_proba(probe), atol=1e-6)
    assert (label == model.predict(probe)).all()


def test_a_multiclass_model_and_trees_without_a_split_export_with_parity():
    x, y = _table(2)
    classes = np.digitize(y, np.quantile(y, [0.33, 0.66]))
    multiclass = lightgbm.LGBMClassifier(n_estimators=40, verbose=-1).fit(x, classes)
    stump = lightgbm.LGBMRegressor(n_estimators=5, min_child_samples=ROWS, verbose=-1).fit(x, y)  # no split fits
    assert stump.booster_.trees_to_dataframe().split_feature.isna().all()
    label, proba = _onnx_outputs(multiclass, x)
    np.testing.assert_allclose(proba, multiclass.predict_proba(x), atol=1e-6)
    assert (label == multiclass.predict(x)).all()
    (constant,) = _onnx_outputs(stump, x)
    np.testing.assert_allclose(constant.ravel(), stump.predict(x), rtol=1e-6)


def test_a_log_link_objective_exports_and_an_unknown_one_is_refused_by_name():
    x, y = _table(3)
    counts = np.random.default_rng(3).poisson(np.exp(0.3 * x[:, 0]))
    poisson = lightgbm.LGBMRegressor(objective="poisson", n_estimators=20, verbose=-1).fit(x, counts)
    (predicted,) = _onnx_outputs(poisson, x)
    np.testing.assert_allclose(predicted.ravel(), poisson.predict(x), rtol=1e-5)
    share = lightgbm.LGBMRegressor(objective="cross_entropy", n_estimators=5, verbose=-1).fit(x, (y > 0).astype(float))
    with pytest.raises(ExportError, match="objective 'cross_entropy' has no loopml ONNX converter"):
        lightgbm_ensemble(share)
