"""The class labels a converted classifier gathers its label output from, and that output."""

from __future__ import annotations

from typing import Any

import numpy as np


def onnx_classes(classes: np.ndarray) -> np.ndarray:
    """The class list as the label output's declared type.

    skl2onnx's shape calculator declares the label output int64 for numeric or bool
    classes and string only for text classes. The MLP converter used to gather numeric
    non-integer-dtype classes (e.g. float64 [0.0, 1.0]) as strings, which ONNX Runtime
    refused at load time ("Type (tensor(int64)) of output arg (label) of node (Ga_Gather)
    does not match expected", issue #18). The gathered constant now always has the
    declared type; classes that cannot be int64 labels are refused here, before a broken
    file is written (loopml normalises labels so this does not happen, see
    `automl_tasks.core.labels`).
    """
    values = classes.tolist()
    if all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=object).astype(str)
    if all(isinstance(v, (int, float, bool, np.number, np.bool_)) for v in values):
        as_int = np.asarray(values, dtype=np.float64).astype(np.int64)
        if not np.array_equal(as_int, np.asarray(values, dtype=np.float64)):
            raise ValueError(f"numeric class labels must be whole numbers to be ONNX labels; got {values[:5]}")
        return as_int
    raise ValueError(f"class labels must be all numbers or all strings; got {values[:5]}")


def add_label_output(scope: Any, operator: Any, container: Any, scores: Any) -> None:
    """A classifier operator's label output: its class (`onnx_classes`) at the highest of
    `scores` (an ONNX node or variable name, one column per class), as `predict` does."""
    from skl2onnx.algebra.onnx_ops import OnnxArgMax, OnnxGather

    opv = container.target_opset
    classes = onnx_classes(np.asarray(operator.raw_operator.classes_))
    index = OnnxArgMax(scores, axis=1, keepdims=0, op_version=opv)
    label = OnnxGather(classes, index, axis=0, op_version=opv, output_names=operator.outputs[:1])
    label.add_to(scope, container)
