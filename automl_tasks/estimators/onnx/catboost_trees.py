"""CatBoost to ONNX from the model's JSON: one `TreeEnsembleRegressor` node that compares
float32 features with float32 borders, then the loss function's link.

Why our own converter, as for LightGBM and XGBoost: CatBoost's own ONNX export writes float
thresholds and a ZipMap, and skl2onnx would need its graph spliced into the pipeline's;
loopml's boosted-trees converters share one double-precision op and one link
(boosted_trees.py).

Semantics kept from CatBoost's model evaluator: a tree is oblivious (every node of a level
splits on the same feature and border); a row's leaf is the sum over levels i of
`(x[feature_i] > border_i) << i`; its value is `leaf_values[leaf]` (`leaf_values[leaf *
k + class]` for k classes). The raw score is `scale * sum(leaves) + bias` per output.
CatBoost compares float32 features, so the graph casts them to float32 first, as for
XGBoost. Each level becomes a level of a full binary tree (`BRANCH_LEQ`: `x <= border`
goes to the bit-0 child); a missing value takes the bit-0 way (CatBoost's default
`nan_mode` Min; loopml's pipelines impute before the model in any case).
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from automl_tasks.core.errors import ExportError
from automl_tasks.estimators.onnx.boosted_trees import add_trees_and_link, ensemble_attributes

#: CatBoost loss function -> link between the summed raw score and the prediction
LINKS = {"Logloss": "sigmoid", "CrossEntropy": "sigmoid", "MultiClass": "softmax", "RMSE": "identity"}
_LEQ, _LEAF = "BRANCH_LEQ", "LEAF"


def _add_tree(parts: dict[str, list[np.ndarray]], number: int, outputs: int, tree: dict[str, Any]) -> None:
    """Append oblivious tree `number` to `parts` (attribute -> one array per tree) as a full
    binary tree: level l's node for the bits p of the levels above has id 2**l - 1 + p."""
    splits = tree["splits"]
    if any(split.get("split_type") != "FloatFeature" for split in splits):
        raise ExportError(
            f"CatBoost tree {number} splits on categories or text, which loopml's ONNX converter does not write"
        )
    depth = len(splits)
    inner = 2**depth - 1
    level = np.floor(np.log2(np.arange(inner) + 1)).astype(np.int64)  # each inner node's level
    prefix = np.arange(inner) - (2**level - 1)  # its bits of the levels above
    features = np.asarray([s["float_feature_index"] for s in splits], dtype=np.int64)
    # float32 as CatBoost holds its borders (the JSON's decimal reads back to the same float32)
    borders = np.asarray([s["border"] for s in splits], dtype=np.float32).astype(np.float64)
    next_level = 2 ** (level + 1) - 1
    count = inner + 2**depth
    ids = np.arange(count, dtype=np.int64)
    leaf = ids >= inner

    def per_node(inner_values: np.ndarray, leaf_value: Any) -> np.ndarray:
        return np.concatenate([inner_values, np.full(2**depth, leaf_value, dtype=np.asarray(inner_values).dtype)])

    parts["tree_ids"].append(np.full(count, number, dtype=np.int64))
    parts["node_ids"].append(ids)
    parts["feature_ids"].append(per_node(features[level], 0))
    parts["modes"].append(np.where(leaf, _LEAF, _LEQ).astype(object))
    parts["values"].append(per_node(borders[level], 0.0))
    parts["true_ids"].append(per_node(next_level + prefix, 0))  # x <= border: the level's bit is 0
    parts["false_ids"].append(per_node(next_level + prefix + 2**level, 0))
    parts["missing_true"].append(per_node(np.ones(inner, dtype=np.int64), 0))
    leaf_values = np.asarray(tree["leaf_values"], dtype=np.float64).reshape(2**depth, outputs)
    leaf_ids = np.repeat(np.arange(inner, count, dtype=np.int64), outputs)
    parts["leaf_tree_ids"].append(np.full(len(leaf_ids), number, dtype=np.int64))
    parts["leaf_node_ids"].append(leaf_ids)
    parts["leaf_targets"].append(np.tile(np.arange(outputs, dtype=np.int64), 2**depth))
    parts["leaf_values"].append(leaf_values.reshape(-1))


def catboost_ensemble(model: Any) -> tuple[str, int, dict[str, Any]]:
    """(link, number of outputs, `TreeEnsembleRegressor` attributes) of a fitted CatBoost
    model (early stopping with an eval set already cut it at the best iteration)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.json"
        model.save_model(str(path), format="json")
        saved = json.loads(path.read_text())
    loss = saved["model_info"].get("params", {}).get("loss_function", {}).get("type")
    link = LINKS.get(loss)
    if link is None:
        raise ExportError(f"CatBoost loss function {loss!r} has no loopml ONNX converter")
    if saved["features_info"].get("categorical_features") or saved["features_info"].get("text_features"):
        raise ExportError("a CatBoost model with categorical or text features has no loopml ONNX converter")
    trees = saved.get("oblivious_trees")
    if not trees:
        raise ExportError("a CatBoost model without oblivious (symmetric) trees has no loopml ONNX converter")
    scale, bias = saved.get("scale_and_bias", [1.0, [0.0]])
    outputs = len(bias)
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for number, tree in enumerate(trees):
        _add_tree(parts, number, outputs, tree)
    return link, outputs, ensemble_attributes(parts, outputs, leaf_scale=float(scale), base=np.asarray(bias, float))


def convert_catboost(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter of loopml's CatBoost classifier and regressor: the trees on the
    features as float32, then the loss function's link; a classifier also gives its label."""
    link, _, attributes = catboost_ensemble(operator.raw_operator)
    add_trees_and_link(scope, operator, container, attributes, link, "CatBoost", float32_features=True)
