"""One ONNX graph for a weighted ensemble: the members' graphs side by side on shared
column inputs, and the weighted mean of their outputs (issue #11: "its ONNX export is the
members plus the weights").

Each member keeps its own graph (prefixed `m<i>_`), input types included: a member whose
numeric inputs are float32 reads the ensemble's float64 columns through a Cast. Outputs
follow a single model's conventions (deploy/onnx_model): `label` and `probabilities`
(float32) for a classifier, `variable` (float32, [N, 1]) for a regressor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from automl_tasks.core.errors import ExportError


def _label_tensor(classes: np.ndarray) -> np.ndarray:
    if classes.dtype.kind in "iub":
        return classes.astype(np.int64)
    if classes.dtype.kind in "UOS":
        return classes.astype(str).astype(object)
    raise ExportError(f"cannot export an ensemble whose classes are of dtype {classes.dtype}")


def merge_weighted(
    members: Sequence[Any], weights: Sequence[float], inputs: Sequence[Any], classes: np.ndarray | None
) -> Any:
    """The ensemble's ModelProto from the members' ModelProtos.

    `inputs`: the ensemble's graph inputs (ValueInfoProto, one per column); `classes`: the
    classifier's classes in probability-column order, None for a regressor."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.compose import add_prefix

    total = float(sum(weights))
    nodes, initializers, weighted = [], [], []
    input_types = {i.name: i.type.tensor_type.elem_type for i in inputs}
    for i, (model, weight) in enumerate(zip(members, weights, strict=True)):
        prefix = f"m{i}_"
        member = add_prefix(model, prefix)
        graph = member.graph
        for graph_input in graph.input:
            column = graph_input.name[len(prefix) :]
            if column not in input_types:
                raise ExportError(f"ensemble member {i} reads column {column!r}, which the ensemble does not have")
            to = graph_input.type.tensor_type.elem_type
            if to == input_types[column]:
                nodes.append(helper.make_node("Identity", [column], [graph_input.name], name=f"{prefix}in_{column}"))
            else:
                nodes.append(helper.make_node("Cast", [column], [graph_input.name], to=to, name=f"{prefix}in_{column}"))
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        outputs = [o.name for o in graph.output]
        source = outputs[1] if classes is not None else outputs[0]
        if classes is not None and len(outputs) != 2:
            raise ExportError(f"ensemble member {i} has outputs {outputs}; a classifier needs label and probabilities")
        weight_name = f"{prefix}weight"
        initializers.append(numpy_helper.from_array(np.asarray(weight / total, dtype=np.float64), weight_name))
        nodes.append(helper.make_node("Cast", [source], [f"{prefix}out64"], to=TensorProto.DOUBLE))
        nodes.append(helper.make_node("Mul", [f"{prefix}out64", weight_name], [f"{prefix}weighted"]))
        weighted.append(f"{prefix}weighted")
    nodes.append(helper.make_node("Sum", weighted, ["ensemble_mean"], name="ensemble_mean"))
    if classes is None:
        nodes.append(helper.make_node("Cast", ["ensemble_mean"], ["variable"], to=TensorProto.FLOAT))
        graph_outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]
    else:
        labels = _label_tensor(np.asarray(classes))
        initializers.append(numpy_helper.from_array(labels, "ensemble_classes"))
        nodes.append(helper.make_node("Cast", ["ensemble_mean"], ["probabilities"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("ArgMax", ["ensemble_mean"], ["ensemble_argmax"], axis=1, keepdims=0))
        nodes.append(helper.make_node("Gather", ["ensemble_classes", "ensemble_argmax"], ["label"], axis=0))
        label_type = TensorProto.INT64 if labels.dtype == np.int64 else TensorProto.STRING
        graph_outputs = [
            helper.make_tensor_value_info("label", label_type, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(labels)]),
        ]
    opsets: dict[str, int] = {}
    for model in members:
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    graph = helper.make_graph(nodes, "loopml_weighted_ensemble", list(inputs), graph_outputs, initializers)
    merged = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in sorted(opsets.items())],
        ir_version=max(model.ir_version for model in members),
    )
    try:
        onnx.checker.check_model(merged)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the merged ensemble graph is not valid ONNX: {exc}") from exc
    return merged
