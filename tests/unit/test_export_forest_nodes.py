"""The vectorised forest node walk (estimators/onnx/forest_nodes.py) writes what skl2onnx's
own per-node walk writes, attribute for attribute, so the converted forests are the same."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from skl2onnx.common.tree_ensemble import add_tree_to_attribute_pairs as skl2onnx_walk
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor

from automl_tasks.estimators.onnx.forest_nodes import add_tree_to_attribute_pairs, sklearn_thresholds_float32


def _data(task: str, classes: int = 2):
    rng = np.random.default_rng(0)
    # rounded values: many rows sit exactly on the midpoints the trees split at
    x = np.round(rng.normal(size=(400, 5)), 2)
    if task == "regression":
        return x, x[:, 0] * 3 + rng.normal(size=400)
    return x, np.digitize(x[:, 0] + rng.normal(scale=0.5, size=400), np.linspace(-1, 1, classes - 1))


@pytest.mark.parametrize(
    ("model", "task", "classes", "counts"),
    [
        (RandomForestClassifier(n_estimators=4, random_state=0), "binary", 2, True),
        (ExtraTreesClassifier(n_estimators=4, random_state=0), "multiclass", 4, True),
        (RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0), "multiclass", 3, False),
        (RandomForestRegressor(n_estimators=4, random_state=0), "regression", 0, False),
    ],
)
def test_the_vectorised_walk_writes_skl2onnxs_attributes_exactly(model, task, classes, counts):
    x, y = _data(task, classes)
    model.fit(x, y)
    is_classifier = task != "regression"
    theirs, ours = defaultdict(list), defaultdict(list)
    for tree_id, estimator in enumerate(model.estimators_):
        for walk, pairs in ((skl2onnx_walk, theirs), (add_tree_to_attribute_pairs, ours)):
            walk(pairs, is_classifier, estimator.tree_, tree_id, 1.0 / len(model.estimators_), 0, counts, True,
                 dtype=np.float32)  # fmt: skip
    assert set(ours) == set(theirs)
    for name, values in theirs.items():
        if name == "nodes_modes":
            assert ours[name] == values
        else:
            np.testing.assert_array_equal(np.asarray(ours[name], dtype=np.float64), np.asarray(values, dtype=np.float64),
                                          err_msg=name)  # fmt: skip


def test_float32_thresholds_round_down_to_the_largest_float32_not_above_the_split():
    from skl2onnx.common.tree_ensemble import sklearn_threshold

    rng = np.random.default_rng(1)
    thresholds = np.concatenate([rng.normal(size=500) * 10.0 ** rng.integers(-3, 4, 500), [0.0, 1.0, -2.5, 1e-30]])
    expected = [sklearn_threshold(t, np.float32, "BRANCH_LEQ") for t in thresholds]
    np.testing.assert_array_equal(sklearn_thresholds_float32(thresholds), np.asarray(expected, dtype=np.float64))


@pytest.mark.parametrize("classes", [2, 4, 0])
def test_the_float64_leaf_weights_are_each_leafs_share_over_the_trees(classes):
    """The float64 pass (conversion.double_tree_thresholds) reads every weight from the fitted
    trees, not the converter's float32 fallback it keeps for an unexpected layout."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from automl_tasks.estimators.onnx.conversion import _forest_class_weights, _forest_target_weights

    task = "regression" if classes == 0 else "multiclass"
    x, y = _data(task, classes)
    cls = RandomForestRegressor if classes == 0 else RandomForestClassifier
    model = cls(n_estimators=3, random_state=0).fit(x, y)
    options = {id(model): {"zipmap": False}} if classes else None
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 5]))], options=options)
    attributes = {a.name: a for a in onx.graph.node[0].attribute}
    prefix = "class" if classes else "target"
    trees, nodes = attributes[f"{prefix}_treeids"].ints, attributes[f"{prefix}_nodeids"].ints
    ids = attributes[f"{prefix}_ids"].ints
    expected = []
    for t, n, c in zip(trees, nodes, ids, strict=True):
        value = model.estimators_[t].tree_.value[n, 0]
        share = value[1 if len(value) == 2 else c] / value.sum() if classes else value[0]
        expected.append(share / len(model.estimators_))
    weights = _forest_class_weights(model, attributes) if classes else _forest_target_weights(model, attributes)
    np.testing.assert_allclose(weights, expected, rtol=1e-15, atol=0)
    assert not np.array_equal(weights, np.asarray(attributes[f"{prefix}_weights"].floats, dtype=np.float64))
