"""ONNX converters for loopml's own pipeline steps and for LightGBM (lightgbm_trees.py),
registered once."""

from __future__ import annotations

import contextvars
import functools

import numpy as np

from automl_tasks.estimators.preprocessing import SignedLog1p

# --- numeric preprocessing in the input's precision ----------------------------------------
# scikit-learn imputes and scales in float64 and its trees then compare float32(x) with
# their thresholds. skl2onnx's Imputer and Scaler ops compute in float32, so a scaled value
# could differ from float32(float64 result) by a step and land on the other side of a split
# point (a deep random forest disagreed on ~8% of rows, issue #11). Numeric columns are
# therefore fed to forests as float64 (`onnx_export.export_pipeline`), imputed and scaled
# with plain ONNX arithmetic in float64 in the same order of operations as scikit-learn, and
# cast to float32 once at the end of the scaling step, exactly where scikit-learn's models
# cast. LightGBM compares float64 features, so for it the scaling stays float64 through the
# Concat (`KEEP_FLOAT64`), and so it does for XGBoost and CatBoost, whose converters cast to
# float32 right before their trees, where those libraries cast. With float32 inputs (every
# other model) skl2onnx's own ops are used: the float64 nodes cost ~0.1 ms per single-row call on a forest, which only the
# trees need to pay (on ames' 80-column LightGBM pipeline no difference was measurable).


#: True while a pipeline of boosted trees (LightGBM, XGBoost, CatBoost) is converted: its
#: scaling steps then stay in float64 instead of casting to float32 like a forest's input
KEEP_FLOAT64: contextvars.ContextVar[bool] = contextvars.ContextVar("loopml_onnx_keep_float64", default=False)


def _numeric_input(operator, opv):
    """The step's input columns as one [N, C] tensor (skl2onnx may hand them over separately)."""
    from skl2onnx.algebra.onnx_ops import OnnxConcat

    if len(operator.inputs) == 1:
        return operator.inputs[0]
    return OnnxConcat(*operator.inputs, axis=1, op_version=opv)


def _input_dtype(operator) -> type:
    from skl2onnx.common.data_types import DoubleTensorType

    return np.float64 if isinstance(operator.inputs[0].type, DoubleTensorType) else np.float32


def _same_type_shape(operator) -> None:
    if _input_dtype(operator) is np.float32:
        from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes

        return calculate_sklearn_imputer_output_shapes(operator)
    source = operator.inputs[0].type
    width = sum(v.type.shape[1] for v in operator.inputs)
    operator.outputs[0].type = source.__class__([source.shape[0], width])


def _float_shape(operator) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    if _input_dtype(operator) is np.float32 and not isinstance(operator.raw_operator, SignedLog1p):
        from skl2onnx.shape_calculators.scaler import calculate_sklearn_scaler_output_shapes

        return calculate_sklearn_scaler_output_shapes(operator)
    source = operator.inputs[0].type
    width = sum(v.type.shape[1] for v in operator.inputs)
    result_type = source.__class__ if KEEP_FLOAT64.get() else FloatTensorType
    operator.outputs[0].type = result_type([source.shape[0], width])


def _convert_imputer(scope, operator, container) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxIsNaN, OnnxWhere

    if _input_dtype(operator) is np.float32:
        from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

        return convert_sklearn_imputer(scope, operator, container)
    opv = container.target_opset
    x = _numeric_input(operator, opv)
    fill = np.asarray(operator.raw_operator.statistics_, dtype=_input_dtype(operator)).reshape(1, -1)
    result = OnnxWhere(OnnxIsNaN(x, op_version=opv), fill, x, op_version=opv, output_names=operator.outputs[:1])
    result.add_to(scope, container)


def _to_float(result, operator, opv):
    from onnx import TensorProto
    from skl2onnx.algebra.onnx_ops import OnnxCast, OnnxIdentity

    if _input_dtype(operator) is np.float32 or KEEP_FLOAT64.get():
        return OnnxIdentity(result, op_version=opv, output_names=operator.outputs[:1])
    return OnnxCast(result, to=TensorProto.FLOAT, op_version=opv, output_names=operator.outputs[:1])


def _convert_standard_scaler(scope, operator, container) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxDiv, OnnxSub

    if _input_dtype(operator) is np.float32:
        from skl2onnx.operator_converters.scaler_op import convert_sklearn_scaler

        return convert_sklearn_scaler(scope, operator, container)
    opv, model, dtype = container.target_opset, operator.raw_operator, _input_dtype(operator)
    x = _numeric_input(operator, opv)
    if model.mean_ is not None:
        x = OnnxSub(x, model.mean_.astype(dtype).reshape(1, -1), op_version=opv)
    if model.scale_ is not None:
        x = OnnxDiv(x, model.scale_.astype(dtype).reshape(1, -1), op_version=opv)
    _to_float(x, operator, opv).add_to(scope, container)


def _convert_minmax_scaler(scope, operator, container) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxMul

    if _input_dtype(operator) is np.float32:
        from skl2onnx.operator_converters.scaler_op import convert_sklearn_min_max_scaler

        return convert_sklearn_min_max_scaler(scope, operator, container)
    opv, model, dtype = container.target_opset, operator.raw_operator, _input_dtype(operator)
    if model.clip:
        raise ValueError("MinMaxScaler(clip=True) has no loopml ONNX converter")
    x = OnnxMul(_numeric_input(operator, opv), model.scale_.astype(dtype).reshape(1, -1), op_version=opv)
    x = OnnxAdd(x, model.min_.astype(dtype).reshape(1, -1), op_version=opv)
    _to_float(x, operator, opv).add_to(scope, container)


def _convert_signed_log1p(scope, operator, container) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxAbs, OnnxAdd, OnnxLog, OnnxMul, OnnxSign

    opv = container.target_opset
    x = _numeric_input(operator, opv)
    one = np.array([1.0], dtype=_input_dtype(operator))
    log = OnnxLog(OnnxAdd(OnnxAbs(x, op_version=opv), one, op_version=opv), op_version=opv)
    _to_float(OnnxMul(OnnxSign(x, op_version=opv), log, op_version=opv), operator, opv).add_to(scope, container)


def _mlp_logits(operator, opv):
    from skl2onnx.algebra.onnx_ops import OnnxGemm, OnnxRelu

    layers = operator.raw_operator.layer_weights()
    hidden = operator.inputs[0]
    for i, (weight, bias) in enumerate(layers):
        hidden = OnnxGemm(hidden, weight.astype(np.float32), bias.astype(np.float32), transB=1, op_version=opv)
        if i < len(layers) - 1:
            hidden = OnnxRelu(hidden, op_version=opv)
    return hidden


def _convert_mlp_classifier(scope, operator, container) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxSoftmax

    from automl_tasks.estimators.onnx.labels import add_label_output

    opv = container.target_opset
    logits = _mlp_logits(operator, opv)
    add_label_output(scope, operator, container, logits)
    proba = OnnxSoftmax(logits, axis=1, op_version=opv, output_names=operator.outputs[1:2])
    proba.add_to(scope, container)


def _convert_mlp_regressor(scope, operator, container) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxMul

    opv = container.target_opset
    model = operator.raw_operator
    scaled = OnnxMul(_mlp_logits(operator, opv), np.array([model.y_scale_], dtype=np.float32), op_version=opv)
    result = OnnxAdd(
        scaled, np.array([model.y_mean_], dtype=np.float32), op_version=opv, output_names=operator.outputs[:1]
    )
    result.add_to(scope, container)


@functools.cache
def register_converters() -> None:
    """Teach skl2onnx about LightGBM, XGBoost and CatBoost (lightgbm_trees.py, xgboost_trees.py,
    catboost_trees.py) and loopml's custom steps, and give its forest converters the
    vectorised node walk (forest_nodes.py)."""
    import lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from automl_tasks.estimators.catboost_models import CatBoostClassifier, CatBoostRegressor
    from automl_tasks.estimators.onnx.catboost_trees import convert_catboost
    from automl_tasks.estimators.onnx.forest_nodes import use_vectorised_forest_nodes
    from automl_tasks.estimators.onnx.lightgbm_trees import convert_lightgbm
    from automl_tasks.estimators.onnx.xgboost_trees import convert_xgboost
    from automl_tasks.estimators.preprocessing import QuantileImputer, SignedLog1p
    from automl_tasks.estimators.torch_mlp import TorchMLPClassifier, TorchMLPRegressor
    from automl_tasks.estimators.xgboost_models import XGBoostClassifier, XGBoostRegressor

    use_vectorised_forest_nodes()

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    update_registered_converter(
        lightgbm.LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options=classifier_options,
    )
    update_registered_converter(
        lightgbm.LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
    )
    update_registered_converter(
        XGBoostClassifier,
        "LoopmlXGBoostClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options=classifier_options,
    )
    update_registered_converter(
        XGBoostRegressor, "LoopmlXGBoostRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
    )
    update_registered_converter(
        CatBoostClassifier,
        "LoopmlCatBoostClassifier",
        calculate_linear_classifier_output_shapes,
        convert_catboost,
        options=classifier_options,
    )
    update_registered_converter(
        CatBoostRegressor, "LoopmlCatBoostRegressor", calculate_linear_regressor_output_shapes, convert_catboost
    )
    for imputer in (SimpleImputer, QuantileImputer):
        update_registered_converter(imputer, f"Loopml{imputer.__name__}", _same_type_shape, _convert_imputer)
    update_registered_converter(
        StandardScaler,
        "LoopmlStandardScaler",
        _float_shape,
        _convert_standard_scaler,
        options={"div": ["std", "div", "div_cast"]},  # skl2onnx's float32 converter reads it
    )
    update_registered_converter(MinMaxScaler, "LoopmlMinMaxScaler", _float_shape, _convert_minmax_scaler)
    update_registered_converter(SignedLog1p, "LoopmlSignedLog1p", _float_shape, _convert_signed_log1p)
    update_registered_converter(
        TorchMLPClassifier,
        "LoopmlTorchMLPClassifier",
        calculate_linear_classifier_output_shapes,
        _convert_mlp_classifier,
        options=classifier_options,
    )
    update_registered_converter(
        TorchMLPRegressor, "LoopmlTorchMLPRegressor", calculate_linear_regressor_output_shapes, _convert_mlp_regressor
    )
