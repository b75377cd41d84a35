"""ONNX converters for loopml's own pipeline steps and for LightGBM (registered once)."""

from __future__ import annotations

import functools

import numpy as np


def _same_shape(operator) -> None:
    source = operator.inputs[0].type
    operator.outputs[0].type = source.__class__([source.shape[0], source.shape[1]])


def _convert_signed_log1p(scope, operator, container) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxAbs, OnnxAdd, OnnxLog, OnnxMul, OnnxSign

    opv = container.target_opset
    x = operator.inputs[0]
    log = OnnxLog(
        OnnxAdd(OnnxAbs(x, op_version=opv), np.array([1.0], dtype=np.float32), op_version=opv), op_version=opv
    )
    result = OnnxMul(OnnxSign(x, op_version=opv), log, op_version=opv, output_names=operator.outputs[:1])
    result.add_to(scope, container)


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
    from skl2onnx.algebra.onnx_ops import OnnxArgMax, OnnxGather, OnnxSoftmax

    opv = container.target_opset
    logits = _mlp_logits(operator, opv)
    classes = operator.raw_operator.classes_
    classes = classes.astype(np.int64) if np.issubdtype(classes.dtype, np.integer) else classes.astype(str)
    index = OnnxArgMax(logits, axis=1, keepdims=0, op_version=opv)
    label = OnnxGather(classes, index, axis=0, op_version=opv, output_names=operator.outputs[:1])
    proba = OnnxSoftmax(logits, axis=1, op_version=opv, output_names=operator.outputs[1:2])
    label.add_to(scope, container)
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
    """Teach skl2onnx about LightGBM (via onnxmltools) and loopml's custom steps."""
    import lightgbm
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes

    from automl_tasks.estimators.preprocessing import QuantileImputer, SignedLog1p
    from automl_tasks.estimators.torch_mlp import TorchMLPClassifier, TorchMLPRegressor

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
        options={"split": None},
    )
    update_registered_converter(
        QuantileImputer, "LoopmlQuantileImputer", calculate_sklearn_imputer_output_shapes, convert_sklearn_imputer
    )
    update_registered_converter(SignedLog1p, "LoopmlSignedLog1p", _same_shape, _convert_signed_log1p)
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
