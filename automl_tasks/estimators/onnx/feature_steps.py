"""Put the feature pipeline's table lookups and arithmetic into an exported ONNX graph.

A feature pipeline's frequency and interaction columns (`FeaturePipeline.graph_steps`) are
plain ONNX: the graph takes the columns they derive from (it is fed those anyway) and
computes them, so the exported file alone reproduces them and the service does not. Dates,
texts and SQL steps have no standard ONNX op and run in Python before the graph.

- frequency: `LabelEncoder` (category -> its index, unseen -> one past the end) + `Gather`
  from the shares (an appended 0 answers unseen categories), in the graph's numeric type,
  so a float64 graph reads the shares exactly. `deploy.backends.lowering` rewrites such a
  `LabelEncoder` for OpenVINO and TVM like the models' own encoders.
- interaction: `Mul` or `Div`, then infinities and NaN (x/0 included) become NaN, as
  `features.steps.interaction` and the pipeline's inf -> NaN do: `Where(|v| < inf, v, NaN)`
  (no `IsInf`, which not every engine converts).
Written by hand: skl2onnx converts scikit-learn objects, and these steps are not ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from automl_tasks.core.errors import ExportError
from automl_tasks.estimators.features import FeatureSchema

ML_DOMAIN = "ai.onnx.ml"
_NUMPY_OF = {1: np.float32, 11: np.float64}  # TensorProto FLOAT, DOUBLE
_STRING = 8  # TensorProto STRING


def embed_feature_steps(onx: Any, schema: FeatureSchema) -> None:
    """Replace `onx`'s inputs for the columns `schema.graph_fed` leaves out by nodes that
    compute them from its other inputs (in place)."""
    from onnx import helper, numpy_helper

    fed = schema.graph_fed
    if fed is schema:
        return
    names = schema.model_names
    graph = onx.graph
    inputs = {i.name: i for i in graph.input}
    nodes, constants = [], []

    def const(name: str, value: np.ndarray) -> str:
        constants.append(numpy_helper.from_array(value, name))
        return name

    for column, (op, *sources) in schema.derive.graph_steps.items():
        if column not in names or names[column] not in inputs:
            continue  # a column this model does not read
        output = names[column]
        dtype = _NUMPY_OF[inputs[output].type.tensor_type.elem_type]
        source = [names.get(s, "") for s in sources]
        kinds = [inputs[s].type.tensor_type.elem_type if s in inputs else None for s in source]
        wanted = [_STRING] if op == "frequency" else [inputs[output].type.tensor_type.elem_type] * 2
        if kinds != wanted:  # the pipeline and the model disagree: never serve a guess
            raise ExportError(f"the ONNX graph cannot compute {column!r}: its inputs {sources} are not fed as needed")
        if op == "frequency":
            shares = schema.derive.frequencies[sources[0]]
            index = f"loopml_{output}__index"
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [source[0]],
                    [index],
                    domain=ML_DOMAIN,
                    keys_strings=list(shares),
                    values_int64s=list(range(len(shares))),
                    default_int64=len(shares),
                )
            )
            table = const(f"loopml_{output}__shares", np.asarray([*shares.values(), 0.0], dtype=dtype))
            nodes.append(helper.make_node("Gather", [table, index], [output], axis=0))
        else:
            raw = f"loopml_{output}__raw"
            nodes.append(helper.make_node("Mul" if op == "x" else "Div", source, [raw]))
            size, finite = f"loopml_{output}__abs", f"loopml_{output}__finite"
            nodes.append(helper.make_node("Abs", [raw], [size]))
            nodes.append(
                helper.make_node("Less", [size, const(f"loopml_{output}__inf", np.asarray(np.inf, dtype))], [finite])
            )
            nan = const(f"loopml_{output}__nan", np.asarray(np.nan, dtype))
            nodes.append(helper.make_node("Where", [finite, raw, nan], [output]))
    if any(n.domain == ML_DOMAIN for n in nodes):
        _require_ml_opset(onx, 2)  # LabelEncoder's keys/values attributes
    computed = {n.output[0] for n in nodes}
    kept = [i for i in graph.input if i.name not in computed]
    del graph.input[:]
    graph.input.extend(kept)
    graph.initializer.extend(constants)
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + existing)  # inputs first: the graph stays topologically sorted


def _require_ml_opset(onx: Any, version: int) -> None:
    """Import `ai.onnx.ml` at `version` or later (a model without ML operators imports it at 1)."""
    from onnx import helper

    for opset in onx.opset_import:
        if opset.domain == ML_DOMAIN:
            opset.version = max(opset.version, version)
            return
    onx.opset_import.append(helper.make_opsetid(ML_DOMAIN, version))
