"""What loopml's boosted-trees converters (lightgbm_trees.py, xgboost_trees.py) share: the
`TreeEnsembleRegressor` attributes from per-tree node arrays, the op itself on the features
cast to float64, and the step after its summed raw score (the objective's link to the prediction,
and a classifier's label output)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from automl_tasks.core.errors import ExportError


def ensemble_attributes(
    parts: Mapping[str, list[np.ndarray]],
    outputs: int,
    *,
    leaf_scale: float = 1.0,
    base: float | np.ndarray | None = None,
) -> dict[str, Any]:
    """`TreeEnsembleRegressor` attributes (ai.onnx.ml opset 3, float64 `*_as_tensor` values)
    from `parts`: attribute -> one array per tree (`tree_ids`, `node_ids`, `feature_ids`,
    `modes`, `values`, `true_ids`, `false_ids`, `missing_true` per node; `leaf_tree_ids`,
    `leaf_node_ids`, `leaf_targets`, `leaf_values` per leaf). `base`: every output's start (one
    value for all, or one per output)."""
    from onnx import numpy_helper

    joined = {name: np.concatenate(arrays) for name, arrays in parts.items()}

    def tensor(values: np.ndarray, name: str) -> Any:
        return numpy_helper.from_array(np.ascontiguousarray(values, dtype=np.float64), name=name)

    attributes = {
        "n_targets": outputs,
        "aggregate_function": "SUM",
        "post_transform": "NONE",
        "nodes_treeids": joined["tree_ids"].tolist(),
        "nodes_nodeids": joined["node_ids"].tolist(),
        "nodes_featureids": joined["feature_ids"].tolist(),
        "nodes_modes": joined["modes"].tolist(),
        "nodes_values_as_tensor": tensor(joined["values"], "nodes_values"),
        "nodes_truenodeids": joined["true_ids"].tolist(),
        "nodes_falsenodeids": joined["false_ids"].tolist(),
        "nodes_missing_value_tracks_true": joined["missing_true"].tolist(),
        "target_treeids": joined["leaf_tree_ids"].tolist(),
        "target_nodeids": joined["leaf_node_ids"].tolist(),
        "target_ids": joined["leaf_targets"].tolist(),
        "target_weights_as_tensor": tensor(joined["leaf_values"] * leaf_scale, "target_weights"),
    }
    if base is not None:
        attributes["base_values_as_tensor"] = tensor(np.full(outputs, base), "base_values")
    return attributes


def add_trees_and_link(
    scope: Any,
    operator: Any,
    container: Any,
    attributes: dict[str, Any],
    link: str,
    library: str,
    *,
    float32_features: bool = False,
) -> None:
    """The operator's input cast to float64 (through float32 first with `float32_features`,
    for a library that compares float32 features), the `TreeEnsembleRegressor` of
    `attributes` on it, then `add_tree_link` to the operator's outputs."""
    from onnx import TensorProto

    name, op_name = scope.get_unique_variable_name, scope.get_unique_operator_name
    prefix = library.lower()
    features = operator.inputs[0].full_name
    for kind in (TensorProto.FLOAT, TensorProto.DOUBLE) if float32_features else (TensorProto.DOUBLE,):
        cast = name(f"{prefix}_features")
        container.add_node("Cast", features, cast, to=kind, name=op_name("Cast"))
        features = cast
    raw = name(f"{prefix}_raw")
    container.add_node(
        "TreeEnsembleRegressor",
        features,
        raw,
        op_domain="ai.onnx.ml",
        op_version=3,
        name=op_name("Trees"),
        **attributes,
    )
    add_tree_link(scope, operator, container, raw, link, library)


def add_tree_link(scope: Any, operator: Any, container: Any, raw: str, link: str, library: str) -> None:
    """From `raw` (the summed margins, one column per output) to the operator's outputs:
    a regressor's value (identity or exp link); a classifier's probabilities (sigmoid for
    two classes, softmax for more) and its label, the class of the highest probability, as
    the libraries' own `predict` gives it."""
    from onnx import TensorProto

    from automl_tasks.estimators.onnx.labels import add_label_output

    model = operator.raw_operator
    name, op_name = scope.get_unique_variable_name, scope.get_unique_operator_name
    if not hasattr(model, "classes_"):
        op = {"identity": "Identity", "exp": "Exp"}.get(link)
        if op is None:
            raise ExportError(f"a {library} regressor with a {link} link has no loopml ONNX converter")
        container.add_node(op, raw, operator.outputs[0].full_name, name=op_name(op))
        return
    if link == "softmax":
        proba = operator.outputs[1].full_name
        container.add_node("Softmax", raw, proba, axis=1, name=op_name("Softmax"))
    elif link == "sigmoid" and len(model.classes_) == 2:
        positive, one = name("positive"), name("one")
        container.add_initializer(one, TensorProto.FLOAT, [1, 1], [1.0])
        container.add_node("Sigmoid", raw, positive, name=op_name("Sigmoid"))
        negative = name("negative")
        container.add_node("Sub", [one, positive], negative, name=op_name("Sub"))
        proba = operator.outputs[1].full_name
        container.add_node("Concat", [negative, positive], proba, axis=1, name=op_name("Concat"))
    else:
        raise ExportError(
            f"a {library} classifier of {len(model.classes_)} classes with a {link} link has no loopml ONNX converter"
        )
    add_label_output(scope, operator, container, proba)
