"""Convert a fitted tabular pipeline to ONNX: one input per column, float64 forests.

Beside the estimators it converts (issue #9): `automl_tasks.deploy` runs, checks and
measures the result, and imports this module, never the other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import ExportError
from automl_tasks.estimators.features import FeatureSchema
from automl_tasks.estimators.weighted_ensemble import WeightedEnsemble

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
DOUBLE_TREES = True


def _is_sklearn_forest(model: Any) -> bool:
    return hasattr(model, "estimators_") and hasattr(model.estimators_[0], "tree_")


def _is_boosted_trees(model: Any) -> bool:
    """LightGBM or loopml's XGBoost or CatBoost: their converters (lightgbm_trees.py,
    xgboost_trees.py, catboost_trees.py) take the features in float64 and compare them as the
    library does."""
    from automl_tasks.estimators.catboost_models import CatBoostClassifier, CatBoostRegressor
    from automl_tasks.estimators.xgboost_models import XGBoostClassifier, XGBoostRegressor

    lightgbm = hasattr(model, "booster_") and type(model).__module__.startswith("lightgbm")
    return lightgbm or isinstance(model, (XGBoostClassifier, XGBoostRegressor, CatBoostClassifier, CatBoostRegressor))


def numeric_dtype(pipeline: Any) -> type:
    """The dtype of the exported pipeline's numeric inputs.

    Tree ensembles (scikit-learn forests, LightGBM, XGBoost, CatBoost) get float64: imputation
    and scaling then run in float64 like scikit-learn's, and with the library's own thresholds
    (float64 by `double_tree_thresholds` for forests and lightgbm_trees.py for LightGBM;
    float32 features and values as XGBoost and CatBoost compare them, xgboost_trees.py and
    catboost_trees.py) no row crosses a split point (see
    automl_tasks/estimators/onnx/converters.py); every other model keeps float32 inputs and
    skl2onnx's faster float32 ops."""
    if isinstance(pipeline, WeightedEnsemble):  # float64 columns when any member reads them
        dtypes = {numeric_dtype(member) for member in pipeline.members}
        return np.float64 if np.float64 in dtypes else np.float32
    model = pipeline.steps[-1][1]
    return np.float64 if _is_sklearn_forest(model) or _is_boosted_trees(model) else np.float32


def export_pipeline(pipeline: Any, schema: FeatureSchema, path: Path) -> Path:
    """Convert a fitted scikit-learn pipeline, or a weighted ensemble of them, to `path`
    (one ONNX input per column)."""
    onx = pipeline_to_onnx(pipeline, schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path


def _input_types(schema: FeatureSchema, dtype: type) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    numeric_type = DoubleTensorType if dtype is np.float64 else FloatTensorType
    inputs = [(c, numeric_type([None, 1])) for c in schema.model_numeric]
    return inputs + [(c, StringTensorType([None, 1])) for c in schema.model_categorical]


def pipeline_to_onnx(pipeline: Any, schema: FeatureSchema) -> Any:
    """The ONNX ModelProto of a fitted pipeline or weighted ensemble, fed
    `schema.graph_fed`'s columns (it computes the feature pipeline's others itself)."""
    from automl_tasks.estimators.onnx.feature_steps import embed_feature_steps

    onx = (
        _ensemble_to_onnx(pipeline, schema)
        if isinstance(pipeline, WeightedEnsemble)
        else _model_to_onnx(pipeline, schema)
    )
    embed_feature_steps(onx, schema)
    return onx


def _model_to_onnx(pipeline: Any, schema: FeatureSchema) -> Any:
    """The ONNX ModelProto of one fitted pipeline, one input per model column."""
    from skl2onnx import convert_sklearn

    from automl_tasks.estimators.onnx.converters import KEEP_FLOAT64, register_converters

    register_converters()
    model = pipeline.steps[-1][1]
    dtype = numeric_dtype(pipeline)
    inputs = _input_types(schema, dtype)
    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    # the boosted trees' converters take float64 (and cast as their library does), forests float32
    token = KEEP_FLOAT64.set(_is_boosted_trees(model))
    try:
        onx = convert_sklearn(pipeline, initial_types=inputs, options=options, target_opset=TARGET_OPSET)
    except Exception as exc:
        raise ExportError(f"ONNX conversion of {type(model).__name__} failed: {exc}") from exc
    finally:
        KEEP_FLOAT64.reset(token)
    _restore_input_names(onx, [name for name, _ in inputs])
    _declare_inferred_output_types(onx)
    if DOUBLE_TREES and _is_sklearn_forest(model):  # the boosted trees' converters write theirs
        double_tree_thresholds(onx, model)
    return onx


def _restore_input_names(onx: Any, names: list[str]) -> None:
    """Give the graph's inputs the model's column names back: skl2onnx renames a name that
    starts with a digit (`1st_value` -> `_1st_value`, or `_1st_value1` beside a column of
    that name), and the feed (`onnx_inputs`) uses the schema's names, so every version with
    such a column fell back to the native runtime. skl2onnx declares one input per initial
    type, in their order; ONNX itself takes any string as a name."""
    inputs = onx.graph.input
    if len(inputs) != len(names):  # not as declared: left to the parity check
        return
    renamed = {graph_input.name: name for graph_input, name in zip(inputs, names, strict=True)}
    if all(old == new for old, new in renamed.items()):
        return
    for graph_input in inputs:
        graph_input.name = renamed[graph_input.name]
    for node in onx.graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)


def _ensemble_to_onnx(ensemble: WeightedEnsemble, schema: FeatureSchema) -> Any:
    """Each member converted alone, then merged with the weights (onnx/merge.py)."""
    from onnx import helper
    from skl2onnx.common.data_types import guess_proto_type

    from automl_tasks.estimators.onnx.merge import merge_weighted

    members = [_model_to_onnx(member, schema) for member in ensemble.members]
    inputs = [
        helper.make_tensor_value_info(name, guess_proto_type(kind), [None, 1])
        for name, kind in _input_types(schema, numeric_dtype(ensemble))
    ]
    return merge_weighted(members, ensemble.weights, inputs, getattr(ensemble, "classes_", None))


def _declare_inferred_output_types(onx: Any) -> None:
    """Declare each graph output with the type its producing node computes.

    With float64 numeric inputs skl2onnx declares the probabilities (and regression
    outputs) float64 by analogy with the first input, while the models compute float32
    (their input is the float32 output of the scaling step); ONNX shape inference knows
    the real type."""
    from onnx import TensorProto, shape_inference

    declared = list(onx.graph.output)
    probe = type(onx)()
    probe.CopyFrom(onx)
    del probe.graph.output[:]
    inferred = {v.name: v.type.tensor_type.elem_type for v in shape_inference.infer_shapes(probe).graph.value_info}
    # ONNX does not infer every output of the ai.onnx.ml ops; their scores are float32
    ml_outputs = {name for n in onx.graph.node if n.domain == "ai.onnx.ml" for name in n.output}
    for output in declared:
        if inferred.get(output.name):
            output.type.tensor_type.elem_type = inferred[output.name]
        elif output.name in ml_outputs and output.type.tensor_type.elem_type == TensorProto.DOUBLE:
            output.type.tensor_type.elem_type = TensorProto.FLOAT


_TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
_DOUBLE_ATTRIBUTES = {"nodes_values", "base_values", "class_weights", "target_weights"}


def double_tree_thresholds(onx: Any, model: Any) -> None:
    """Give a scikit-learn forest's ONNX node its float64 split thresholds (LightGBM's
    converter, lightgbm_trees.py, writes them itself: with float32 thresholds and inputs an
    early-stopped LightGBM on ames disagreed on 3.6% of rows).

    skl2onnx (1.20) writes `nodes_values` as float32 attributes. scikit-learn compares a
    float32 feature with a float64 threshold (the midpoint of two float32 values), so a
    row whose value equals the upper of the two float32 values goes right natively and
    left with the rounded threshold: a deep forest on real data disagreed on ~8% of rows
    (issue #11). ai.onnx.ml opset 3 carries double thresholds in `nodes_values_as_tensor`
    when the ensemble's input is double, so the input is cast to float64 (exact for
    float32 values) and every threshold, leaf weight and base value becomes a float64
    tensor read back from the fitted trees. skl2onnx offers no option for this (its
    double path still writes float attributes and mis-declares the output type), hence
    this graph edit.
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes = [n for n in onx.graph.node if n.op_type in _TREE_OPS and n.domain == "ai.onnx.ml"]
    if len(nodes) != 1:
        raise ExportError(f"expected one tree-ensemble node in the exported model; found {len(nodes)}")
    node = nodes[0]
    attributes = {a.name: a for a in node.attribute}
    tree_ids = list(attributes["nodes_treeids"].ints)
    node_ids = list(attributes["nodes_nodeids"].ints)
    rounded = np.asarray(attributes["nodes_values"].floats, dtype=np.float32)
    modes = [m.decode() if isinstance(m, bytes) else m for m in attributes["nodes_modes"].strings]
    exact = _forest_node_values(model, tree_ids, node_ids, lambda tree: tree.threshold)
    branch = np.asarray(modes) != "LEAF"
    # skl2onnx stores the float32 neighbour that makes `float32(x) <= t` hold exactly as
    # natively, so a branch's stored value is within two float32 steps of the true threshold
    step = np.spacing(np.abs(exact[branch]).astype(np.float32)).astype(np.float64)
    if not np.all(np.abs(exact[branch] - rounded[branch]) <= 2 * step):
        raise ExportError("the exported tree nodes do not match the fitted trees; cannot restore float64 thresholds")
    exact[~branch] = rounded[~branch]
    replacements = {"nodes_values": exact}
    for name in _DOUBLE_ATTRIBUTES - {"nodes_values"}:
        if name in attributes:
            replacements[name] = np.asarray(attributes[name].floats, dtype=np.float64)
    if "class_weights" in replacements:
        replacements["class_weights"] = _forest_class_weights(model, attributes)
    if "target_weights" in replacements:
        replacements["target_weights"] = _forest_target_weights(model, attributes)
    kept = [a for a in node.attribute if a.name not in replacements]
    del node.attribute[:]
    node.attribute.extend(kept)
    for name, values in replacements.items():
        node.attribute.append(helper.make_attribute(f"{name}_as_tensor", numpy_helper.from_array(values, name=name)))
    cast_name = f"{node.input[0]}_as_double"
    cast = helper.make_node("Cast", [node.input[0]], [cast_name], to=TensorProto.DOUBLE, name=f"{node.name}_cast")
    node.input[0] = cast_name
    position = list(onx.graph.node).index(node)
    onx.graph.node.insert(position, cast)
    for opset in onx.opset_import:  # the *_as_tensor attributes exist from ai.onnx.ml opset 3
        if opset.domain == "ai.onnx.ml":
            opset.version = max(opset.version, 3)


def _forest_node_values(model: Any, tree_ids: Any, node_ids: Any, values: Any) -> np.ndarray:
    """`values(tree)[node]` of each (tree, node) pair, read from all trees' arrays at once (a
    Python loop over 346,000 nodes took 2 s of a 12 s export)."""
    trees = [estimator.tree_ for estimator in model.estimators_]
    offsets = np.cumsum([0] + [tree.node_count for tree in trees])
    stacked = np.concatenate([np.asarray(values(tree))[: tree.node_count] for tree in trees])
    return np.asarray(stacked[offsets[np.asarray(tree_ids, dtype=np.int64)] + np.asarray(node_ids, dtype=np.int64)])


def _forest_class_weights(model: Any, attributes: dict[str, Any]) -> np.ndarray:
    """Each leaf's class share / n_trees in float64, in the order of the node's class entries."""
    weights = np.asarray(attributes["class_weights"].floats, dtype=np.float64)
    tree_ids, node_ids = attributes["class_treeids"].ints, attributes["class_nodeids"].ints
    class_ids = np.asarray(attributes["class_ids"].ints, dtype=np.int64)
    leaf_values = _forest_node_values(model, tree_ids, node_ids, lambda tree: tree.value[:, 0, :]).astype(np.float64)
    # a binary forest stores one weight per leaf (class id 0): the positive class share
    chosen = np.ones_like(class_ids) if leaf_values.shape[1] == 2 else class_ids
    shares = leaf_values[np.arange(len(chosen)), chosen] / leaf_values.sum(axis=1)
    exact = shares / len(model.estimators_)
    if not np.allclose(exact, weights, rtol=1e-5, atol=1e-7):
        return weights  # an unexpected layout: keep the converter's weights (parity still checks them)
    return exact


def _forest_target_weights(model: Any, attributes: dict[str, Any]) -> np.ndarray:
    """Each leaf's mean target / n_trees in float64, in the order of the node's target entries."""
    weights = np.asarray(attributes["target_weights"].floats, dtype=np.float64)
    tree_ids, node_ids = attributes["target_treeids"].ints, attributes["target_nodeids"].ints
    leaf_values = _forest_node_values(model, tree_ids, node_ids, lambda tree: tree.value[:, 0, 0])
    exact = leaf_values.astype(np.float64) / len(model.estimators_)
    if not np.allclose(exact, weights, rtol=1e-5, atol=1e-7 * max(1.0, float(np.abs(weights).max(initial=0)))):
        return weights
    return exact


def onnx_inputs(features: pd.DataFrame, schema: FeatureSchema, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """Feature frame (see `feature_frame`) -> the ONNX input dict (one [N, 1] array per column).

    Numeric columns as `dtype`: see `numeric_dtype` (an `OnnxModel` reads it from the file)."""
    feeds = {c: features[c].to_numpy(dtype=dtype).reshape(-1, 1) for c in schema.model_numeric}
    feeds.update({c: features[c].to_numpy(dtype=object).astype(str).reshape(-1, 1) for c in schema.model_categorical})
    return feeds
