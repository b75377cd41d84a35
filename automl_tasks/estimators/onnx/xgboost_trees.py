"""XGBoost to ONNX from the booster's JSON model: one `TreeEnsembleRegressor` node that
compares float32 features with float32 split values, then the objective's link.

Why our own converter, as for LightGBM (lightgbm_trees.py): onnxmltools' parses the
booster's text dump node by node in Python; the JSON model holds each tree as arrays, so
the nodes are built per tree with numpy. Its values are float32 written so that they read
back exactly.

Semantics kept from XGBoost (`RegTree::GetNext`): a node sends `x < split_condition` left
(strict) and a missing value its `default_left` way; XGBoost compares the features as
float32, so the graph casts them to float32 (then to float64, exactly, for the op's double
attributes): no row crosses a split point that XGBoost would not. The raw score is the
model's base margin plus the leaf values of every tree up to the best iteration (what
`predict` uses after early stopping), one target per class for multiclass; the link is
applied after it with plain ONNX ops.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np

from automl_tasks.core.errors import ExportError
from automl_tasks.estimators.onnx.boosted_trees import add_trees_and_link, ensemble_attributes

#: XGBoost objective -> link between the summed margin and the prediction
LINKS = {
    "binary:logistic": "sigmoid",
    "multi:softprob": "softmax",
    "multi:softmax": "softmax",
    "reg:squarederror": "identity",
    "reg:absoluteerror": "identity",
    "reg:pseudohubererror": "identity",
}
_LT, _LEAF = "BRANCH_LT", "LEAF"


def _add_tree(parts: dict[str, list[np.ndarray]], number: int, target: int, tree: dict[str, Any]) -> None:
    """Append tree `number` (adding to output `target`) to `parts` (attribute -> one array per tree)."""
    if any(tree.get("split_type", ())) or tree.get("categories"):
        raise ExportError(f"XGBoost tree {number} splits on categories, which loopml's ONNX converter does not write")
    left = np.asarray(tree["left_children"], dtype=np.int64)
    right = np.asarray(tree["right_children"], dtype=np.int64)
    # float32 as XGBoost holds them (the JSON's shortest decimal reads back to the same float32)
    values = np.asarray(tree["split_conditions"], dtype=np.float32).astype(np.float64)
    features = np.asarray(tree["split_indices"], dtype=np.int64)
    default_left = np.asarray(tree["default_left"], dtype=np.int64)
    count = len(left)
    leaf = left < 0
    parts["tree_ids"].append(np.full(count, number, dtype=np.int64))
    parts["node_ids"].append(np.arange(count, dtype=np.int64))
    parts["feature_ids"].append(np.where(leaf, 0, features))
    parts["modes"].append(np.where(leaf, _LEAF, _LT).astype(object))
    parts["values"].append(np.where(leaf, 0.0, values))
    parts["true_ids"].append(np.where(leaf, 0, left))
    parts["false_ids"].append(np.where(leaf, 0, right))
    parts["missing_true"].append(np.where(leaf, 0, default_left))
    leaves = np.flatnonzero(leaf)
    parts["leaf_tree_ids"].append(np.full(len(leaves), number, dtype=np.int64))
    parts["leaf_node_ids"].append(leaves.astype(np.int64))
    parts["leaf_targets"].append(np.full(len(leaves), target, dtype=np.int64))
    parts["leaf_values"].append(values[leaves])  # a leaf's split_condition is its value


def _base_margin(objective: str, base_score: float) -> float:
    """The margin XGBoost starts every row from (`ObjFunction::ProbToMargin` of base_score)."""
    if objective == "binary:logistic":
        return float(np.log(base_score / (1.0 - base_score)))
    return base_score


def xgboost_ensemble(model: Any) -> tuple[str, int, dict[str, Any]]:
    """(link, number of outputs, `TreeEnsembleRegressor` attributes) of a fitted XGBoost
    model, with the trees its own `predict` uses (up to the best iteration)."""
    learner = json.loads(model.get_booster().save_raw("json"))["learner"]
    objective = learner["objective"]["name"]
    link = LINKS.get(objective)
    booster = learner["gradient_booster"]
    if link is None:
        raise ExportError(f"XGBoost objective {objective!r} has no loopml ONNX converter")
    if booster.get("name") != "gbtree":
        raise ExportError(f"XGBoost booster {booster.get('name')!r} has no loopml ONNX converter (gbtree only)")
    trees_model = booster["model"]
    if int(trees_model["gbtree_model_param"].get("num_parallel_tree", "1")) != 1:
        raise ExportError("XGBoost random-forest mode (num_parallel_tree > 1) has no loopml ONNX converter")
    params = learner["learner_model_param"]
    outputs = max(1, int(params.get("num_class", "0")))
    trees, targets = trees_model["trees"], trees_model["tree_info"]
    best = getattr(model, "best_iteration", None)
    if best is not None:  # early stopping kept later trees; predict stops at the best iteration
        trees = trees[: int(trees_model["iteration_indptr"][best + 1])]
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for number, tree in enumerate(trees):
        _add_tree(parts, number, int(targets[number]), tree)
    margin = _base_margin(objective, float(np.float32(params["base_score"])))
    return link, outputs, ensemble_attributes(parts, outputs, base=margin)


def convert_xgboost(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter of loopml's XGBoost classifier and regressor: the trees on the
    features as float32, then the objective's link; a classifier also gives its label."""
    link, _, attributes = xgboost_ensemble(operator.raw_operator)
    add_trees_and_link(scope, operator, container, attributes, link, "XGBoost", float32_features=True)
