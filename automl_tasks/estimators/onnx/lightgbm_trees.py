"""LightGBM to ONNX from the booster's text model: one `TreeEnsembleRegressor` node with
float64 thresholds and leaf values, then the objective's link (sigmoid, softmax or none).

Why our own converter: onnxmltools' (the one skl2onnx users register) parses the booster's
JSON dump node by node in Python, deep-copies the node lists and writes float32 thresholds,
which a second pass then replaced with the dump's float64 ones: a 4-class member of 1,464
trees took 6.6 s of its 8-member ensemble's 14.5 s export (hpc_data at a 30 s budget, whose
task estimator exports twice: the trust report's model and the registered refit). The text model holds
each tree as arrays (`split_feature=`, `threshold=` printed with 17 digits, ...), so the
nodes are built per tree with numpy, with the exact float64 values LightGBM compares with.

The raw score is summed by `TreeEnsembleRegressor` (one target per class for multiclass)
and the objective's link applied after it with plain ONNX ops, as LightGBM does: one tree
op for every objective, and the label is the class of the highest probability, as in
`LGBMClassifier.predict`.

Semantics kept from LightGBM (`Tree::NumericalDecision`, `Tree::CategoricalDecision`):
a numeric node sends `x <= threshold` left; a missing value goes the node's default way, or,
without a missing type, where 0 would go (the feature pipeline imputes numbers before
LightGBM, so this only matters for models fitted elsewhere). A categorical node sends the
categories of its bitset left and everything else, unseen or missing codes included, right;
it becomes a chain of `BRANCH_EQ` nodes, one per category, all sharing the left subtree.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from automl_tasks.core.errors import ExportError
from automl_tasks.estimators.onnx.boosted_trees import add_trees_and_link, ensemble_attributes

#: objectives whose prediction is the raw score, and those that predict exp(score)
IDENTITY_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
EXP_OBJECTIVES = ("poisson", "gamma", "tweedie")
_DEFAULT_LEFT, _CATEGORICAL = 2, 1  # decision_type bits; the missing type is (d >> 2) & 3
_MISSING_NONE = 0
_LEQ, _EQ, _LEAF = "BRANCH_LEQ", "BRANCH_EQ", "LEAF"


def _header_and_trees(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The model's header fields (a bare flag such as `average_output` maps to "") and each
    tree's fields, as strings."""
    body = text.split("\nend of trees", 1)[0]
    blocks = body.split("\nTree=")
    header = dict((*line.split("=", 1), "")[:2] for line in blocks[0].splitlines() if line)
    trees = [dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line) for block in blocks[1:]]
    return header, trees


def _numbers(tree: dict[str, str], key: str, dtype: type) -> np.ndarray:
    return np.array(tree.get(key, "").split(), dtype=dtype)


def _categories(bounds: np.ndarray, words: np.ndarray, index: int) -> list[int]:
    """The categories of a categorical node's bitset `index` (a tree's `cat_boundaries` and
    `cat_threshold`: 32-bit words, bit c of the set's words marking category c)."""
    bits = words[bounds[index] : bounds[index + 1]]
    return [32 * w + b for w, word in enumerate(bits.tolist()) for b in range(32) if (int(word) >> b) & 1]


def _add_tree(parts: dict[str, list[np.ndarray]], number: int, target: int, tree: dict[str, str]) -> None:
    """Append tree `number` (adding to output `target`) to `parts`: attribute name -> one
    array per tree (the nodes' `nodes_*` and the leaves' `target_*` attributes)."""
    leaf_values = _numbers(tree, "leaf_value", np.float64)
    leaves = len(leaf_values)
    inner = leaves - 1
    features = _numbers(tree, "split_feature", np.int64)
    thresholds = _numbers(tree, "threshold", np.float64)
    decision = _numbers(tree, "decision_type", np.int64)
    left, right = _numbers(tree, "left_child", np.int64), _numbers(tree, "right_child", np.int64)
    if not (len(features) == len(thresholds) == len(decision) == len(left) == len(right) == inner):
        raise ExportError(f"LightGBM tree {number}: its arrays do not describe {leaves} leaves")
    # node ids: inner nodes keep theirs, leaf j is inner + j (LightGBM writes it as ~j)
    true_ids = np.where(left >= 0, left, inner + ~left)
    false_ids = np.where(right >= 0, right, inner + ~right)
    missing = (decision >> 2) & 3
    default_left = (decision & _DEFAULT_LEFT) > 0
    # without a missing type LightGBM reads a missing value as 0.0
    missing_true = np.where(missing == _MISSING_NONE, thresholds >= 0.0, default_left).astype(np.int64)
    modes = np.full(inner, _LEQ, dtype=object)
    values = thresholds.copy()
    chains: list[tuple[int, int, float, int, int]] = []  # (node, feature, category, true, false)
    bounds, words = _numbers(tree, "cat_boundaries", np.int64), _numbers(tree, "cat_threshold", np.uint64)
    for node in np.flatnonzero(decision & _CATEGORICAL).tolist():
        categories = _categories(bounds, words, int(thresholds[node]))
        if not categories:
            raise ExportError(f"LightGBM tree {number}: categorical node {node} has no category")
        modes[node], values[node], missing_true[node] = _EQ, float(categories[0]), 0
        # node -> extra nodes for the other categories, the last one's "false" the old right child
        link = [node] + [inner + leaves + len(chains) + k for k in range(len(categories) - 1)]
        outside = false_ids[node]
        false_ids[node] = link[1] if len(link) > 1 else outside
        for k, category in enumerate(categories[1:], start=1):
            after = link[k + 1] if k + 1 < len(link) else outside
            chains.append((link[k], int(features[node]), float(category), int(true_ids[node]), after))
    extra = np.array(chains, dtype=np.float64).reshape(-1, 5)
    count = inner + leaves + len(chains)
    parts["tree_ids"].append(np.full(count, number, dtype=np.int64))
    parts["node_ids"].append(np.concatenate([np.arange(inner + leaves), extra[:, 0]]).astype(np.int64))
    parts["feature_ids"].append(np.concatenate([features, np.zeros(leaves, np.int64), extra[:, 1]]).astype(np.int64))
    chained = np.full(len(chains), _EQ, dtype=object)
    parts["modes"].append(np.concatenate([modes, np.full(leaves, _LEAF, dtype=object), chained]))
    parts["values"].append(np.concatenate([values, np.zeros(leaves), extra[:, 2]]))
    parts["true_ids"].append(np.concatenate([true_ids, np.zeros(leaves, np.int64), extra[:, 3]]).astype(np.int64))
    parts["false_ids"].append(np.concatenate([false_ids, np.zeros(leaves, np.int64), extra[:, 4]]).astype(np.int64))
    parts["missing_true"].append(np.concatenate([missing_true, np.zeros(leaves + len(chains), np.int64)]))
    parts["leaf_tree_ids"].append(np.full(leaves, number, dtype=np.int64))
    parts["leaf_node_ids"].append(np.arange(inner, inner + leaves, dtype=np.int64))
    parts["leaf_targets"].append(np.full(leaves, target, dtype=np.int64))
    parts["leaf_values"].append(leaf_values)


def _link(header: dict[str, str], trees: list[dict[str, str]]) -> tuple[str, int, float]:
    """(link: "identity", "exp", "sigmoid" or "softmax"; outputs; sigmoid's scale) of the objective."""
    objective = header.get("objective", "").split()
    name = objective[0] if objective else ""
    options = dict(part.split(":", 1) for part in objective[1:] if ":" in part)
    if "average_output" in header or any(t.get("is_linear", "0") != "0" for t in trees):
        raise ExportError("LightGBM random-forest mode and linear trees have no loopml ONNX converter")
    classes = int(header.get("num_class", "1"))
    if name == "binary":
        return "sigmoid", 1, float(options.get("sigmoid", 1.0))
    if name in ("multiclass", "softmax"):
        return "softmax", classes, 1.0
    if name in IDENTITY_OBJECTIVES:
        return "identity", 1, 1.0
    if name in EXP_OBJECTIVES:
        return "exp", 1, 1.0
    raise ExportError(f"LightGBM objective {name!r} has no loopml ONNX converter")


def lightgbm_ensemble(model: Any) -> tuple[str, int, dict[str, Any]]:
    """(link, number of outputs, `TreeEnsembleRegressor` attributes) of a fitted LightGBM
    model, with the trees its own `predict` uses (up to the best iteration)."""
    header, trees = _header_and_trees(model.booster_.model_to_string())
    link, outputs, scale = _link(header, trees)
    per_iteration = int(header.get("num_tree_per_iteration", "1"))
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for number, tree in enumerate(trees):
        _add_tree(parts, number, number % per_iteration, tree)
    return link, outputs, ensemble_attributes(parts, outputs, leaf_scale=scale)


def convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter of `LGBMClassifier` / `LGBMRegressor`: the trees on float64
    features, then the objective's link; a classifier also gives its label."""
    link, _, attributes = lightgbm_ensemble(operator.raw_operator)
    add_trees_and_link(scope, operator, container, attributes, link, "LightGBM")
