"""skl2onnx's per-node walk over a scikit-learn tree, vectorised.

skl2onnx (1.20) converts a forest by calling `add_tree_to_attribute_pairs` once per tree,
which appends each node's attributes in a Python loop (and rounds each threshold with a
scalar helper): two thirds of a 12 s export of 150 unlimited-depth extra trees (346,000
nodes; benchmarks/export_time.py). `add_tree_to_attribute_pairs` here appends the same
values in the same order from the tree's arrays; the forest converter is pointed at it by
`use_vectorised_forest_nodes` (skl2onnx has no hook for this, hence the module attribute).
Any call it does not cover (a threshold dtype other than float32) goes to skl2onnx's own.
tests/unit/test_export_forest_nodes.py checks it against skl2onnx's, list for list.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LEQ, LEAF = "BRANCH_LEQ", "LEAF"


def sklearn_thresholds_float32(thresholds: np.ndarray) -> np.ndarray:
    """skl2onnx's `sklearn_threshold(t, np.float32, "BRANCH_LEQ")` for every threshold: the
    float32 `w` with `float32(x) <= t` exactly when `float32(x) <= w` (the largest float32
    not above t)."""
    rounded = thresholds.astype(np.float32)
    below = np.nextafter(rounded, np.float32(-np.inf))
    return np.where(rounded <= thresholds, rounded, below).astype(np.float64)


def _sequential_row_sums(weights: np.ndarray) -> np.ndarray:
    """Each row's sum added left to right, as Python's `sum` does (numpy's pairwise sum can
    round differently, and the weights must equal skl2onnx's to the bit)."""
    total = np.zeros(len(weights))
    for column in weights.T:
        total = total + column
    return total


def add_tree_to_attribute_pairs(
    attr_pairs: dict[str, list],
    is_classifier: bool,
    tree: Any,
    tree_id: int,
    tree_weight: float,
    weight_id_bias: int,
    leaf_weights_are_counts: bool,
    adjust_threshold_for_sklearn: bool = False,
    dtype: Any = None,
) -> None:
    """skl2onnx.common.tree_ensemble.add_tree_to_attribute_pairs, on whole arrays."""
    if adjust_threshold_for_sklearn and dtype is not np.float32:
        from skl2onnx.common.tree_ensemble import add_tree_to_attribute_pairs as one_node_at_a_time

        one_node_at_a_time(
            attr_pairs,
            is_classifier,
            tree,
            tree_id,
            tree_weight,
            weight_id_bias,
            leaf_weights_are_counts,
            adjust_threshold_for_sklearn=adjust_threshold_for_sklearn,
            dtype=dtype,
        )
        return
    n = tree.node_count
    ids = np.arange(n)
    left, right = np.asarray(tree.children_left[:n]), np.asarray(tree.children_right[:n])
    branch = (left > ids) | (right > ids)
    thresholds = np.where(branch, np.asarray(tree.threshold[:n], dtype=np.float64), 0.0)
    if adjust_threshold_for_sklearn:
        thresholds = np.where(branch, sklearn_thresholds_float32(thresholds), 0.0)
    attr_pairs["nodes_treeids"].extend([tree_id] * n)
    attr_pairs["nodes_nodeids"].extend(ids.tolist())
    attr_pairs["nodes_featureids"].extend(np.where(branch, tree.feature[:n], 0).tolist())
    attr_pairs["nodes_modes"].extend(np.where(branch, LEQ, LEAF).tolist())
    attr_pairs["nodes_values"].extend(thresholds.tolist())
    attr_pairs["nodes_truenodeids"].extend(np.where(branch, left, 0).tolist())
    attr_pairs["nodes_falsenodeids"].extend(np.where(branch, right, 0).tolist())
    attr_pairs["nodes_missing_value_tracks_true"].extend([0] * n)
    attr_pairs["nodes_hitrates"].extend([1.0] * n)

    leaves = np.flatnonzero(~branch)
    weights = np.asarray(tree.value[:n])[leaves].reshape(len(leaves), -1).astype(np.float64)
    factor = np.full(len(leaves), float(tree_weight))
    if leaf_weights_are_counts:
        sums = _sequential_row_sums(weights)
        factor = factor / np.where(sums != 0.0, sums, 1.0)
    weights = weights * factor[:, None]
    if weights.shape[1] == 2 and is_classifier:  # binary: the positive class's weight only
        weights = weights[:, 1:]
    per_leaf = weights.shape[1]
    prefix = "class" if is_classifier else "target"
    attr_pairs[f"{prefix}_treeids"].extend([tree_id] * (len(leaves) * per_leaf))
    attr_pairs[f"{prefix}_nodeids"].extend(np.repeat(leaves, per_leaf).tolist())
    attr_pairs[f"{prefix}_ids"].extend(np.tile(np.arange(per_leaf) + weight_id_bias, len(leaves)).tolist())
    attr_pairs[f"{prefix}_weights"].extend(weights.ravel().tolist())


def use_vectorised_forest_nodes() -> None:
    """Point skl2onnx's forest converters at `add_tree_to_attribute_pairs` above."""
    from skl2onnx.operator_converters import random_forest

    random_forest.add_tree_to_attribute_pairs = add_tree_to_attribute_pairs
