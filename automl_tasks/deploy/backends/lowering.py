"""Rewrite the `ai.onnx.ml` operators of an exported pipeline into standard ONNX ops.

skl2onnx writes scikit-learn's imputer, scaler, encoders, normaliser and linear models as
`ai.onnx.ml` operators, and categorical columns as string inputs. ONNX Runtime runs them;
OpenVINO and TVM have no conversion rule for those operators and no string tensors, so
they refused every tabular model (the DESIGN's known limit). Each of these operators is a
few standard ops, so `lower_ml_ops` rewrites them before those engines read the model:

- `Imputer` (NaN)        -> IsNaN + Where
- `Scaler`               -> Sub + Mul
- `Normalizer` (L1/L2/MAX) -> Div by the row's norm (ReduceSum / ReduceMax)
- `LinearClassifier`     -> Gemm (+ Sigmoid / Softmax) + ArgMax + Gather of the labels
- `LinearRegressor`      -> Gemm
- string inputs          -> int64 category codes: the runner maps each string to its index
  in the input's vocabulary on the host (`LoweredModel.encode`), and the graph's
  `OneHotEncoder` / `LabelEncoder` become Equal / Gather over those codes.

Only cases whose meaning is plain are rewritten; anything else is left as it is and the
engine says what it cannot run (tree ensembles, a string column used by another operator,
string class labels). A rewrite is checked like any build: the engine's outputs must match
ONNX Runtime's on the original model (`verdict.evaluate`), so a wrong rewrite is a parity
failure, never a wrong answer. Written by hand because no converter offers it: onnxmltools
and skl2onnx only emit `ai.onnx.ml`, and Hummingbird converts scikit-learn objects, not
ONNX graphs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from automl_tasks.deploy.backends.base import BackendOptions, DeploymentBackend, Feed, Runner

ML_DOMAIN = "ai.onnx.ml"
#: ops that pass category strings through unchanged (so they pass codes through as well)
_AXES_AS_INPUT = {"ReduceSum": 13, "ReduceMax": 18}
_PASS_THROUGH = {"Gather", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten"}
#: unknown category: the code fed for a string outside the vocabulary
UNKNOWN_CODE = -1


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class LoweredModel:
    """The rewritten model, and the vocabulary of every string input now fed as int64 codes."""

    model: bytes
    vocabularies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @functools.cached_property
    def _indexes(self) -> dict[str, dict[str, int]]:
        """input -> (category -> code), built once: `encode` runs on every request."""
        return {name: {value: i for i, value in enumerate(v)} for name, v in self.vocabularies.items()}

    def encode(self, feed: Feed) -> dict[str, np.ndarray]:
        """`feed` with each string input replaced by its category codes (-1: not in the vocabulary)."""
        encoded = dict(feed)
        for name, index in self._indexes.items():
            if name not in feed:
                continue
            values = np.asarray(feed[name])
            codes = np.fromiter((index.get(str(v), UNKNOWN_CODE) for v in values.ravel()), np.int64, values.size)
            encoded[name] = codes.reshape(values.shape)
        return encoded

    def wrap(self, runner: Runner) -> Runner:
        """`runner` taking the original feed (strings included), when inputs were recoded."""
        return EncodingRunner(runner, self) if self.vocabularies else runner


class EncodingRunner(Runner):
    """A runner over a lowered model that takes the original feed and encodes it first."""

    def __init__(self, inner: Runner, lowered: LoweredModel) -> None:
        self.inner = inner
        self.lowered = lowered
        self.compiled_size_bytes = inner.compiled_size_bytes

    def run(self, feed: Feed) -> list[np.ndarray]:
        return self.inner.run(self.lowered.encode(feed))


class StandardOpsBackend(DeploymentBackend):
    """An engine without the `ai.onnx.ml` operators and string tensors (OpenVINO, TVM): it
    builds the lowered model, and its runner recodes string inputs, so callers feed every
    engine the same way."""

    def _build(self, model: bytes, example_feed: dict[str, np.ndarray], options: BackendOptions) -> Runner:
        lowered = lower_ml_ops(model)
        return lowered.wrap(self._compile(lowered.model, lowered.encode(example_feed), options))


class _Lowering:
    """Builds replacement nodes and constants into one graph."""

    def __init__(self, graph: Any, opset: int) -> None:
        self.graph = graph
        self.opset = opset
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"loopml_lowered_{base}_{self.count}"

    def const(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs: Any) -> tuple[Any, str]:
        from onnx import helper

        outputs = outputs or [self.name(op.lower())]
        return helper.make_node(op, inputs, outputs, name=self.name(op), **attrs), outputs[0]

    def reduce(self, op: str, x: str, axis: int) -> tuple[Any, str]:
        """A ReduceSum or ReduceMax over one axis, keeping it; `axes` moved from an attribute
        to an input at opset 13 (ReduceSum) and 18 (ReduceMax)."""
        if self.opset >= _AXES_AS_INPUT[op]:
            return self.node(op, [x, self.const("axes", np.asarray([axis], dtype=np.int64))], keepdims=1)
        return self.node(op, [x], axes=[axis], keepdims=1)

    # --- one rewrite per operator: a list of nodes, or None to leave the node as it is ---

    def imputer(self, node: Any, codes: Mapping[str, tuple[str, ...]]) -> list | None:
        a = _attrs(node)
        values = a.get("imputed_value_floats")
        if not values or not np.isnan(a.get("replaced_value_float", 0.0)):
            return None
        fill = self.const("imputed", np.asarray(values, dtype=np.float32))
        isnan, mask = self.node("IsNaN", [node.input[0]])
        where, _ = self.node("Where", [mask, fill, node.input[0]], [node.output[0]])
        return [isnan, where]

    def scaler(self, node: Any, codes: Mapping[str, tuple[str, ...]]) -> list | None:
        a = _attrs(node)
        offset = self.const("offset", np.asarray(a.get("offset", [0.0]), dtype=np.float32))
        scale = self.const("scale", np.asarray(a.get("scale", [1.0]), dtype=np.float32))
        sub, shifted = self.node("Sub", [node.input[0], offset])
        mul, _ = self.node("Mul", [shifted, scale], [node.output[0]])
        return [sub, mul]

    def normalizer(self, node: Any, codes: Mapping[str, tuple[str, ...]]) -> list | None:
        # L1 as ReduceSum(Abs): OpenVINO 2025 reads ReduceL1 of opsets 13-17 over every axis
        x, norm = node.input[0], _text(_attrs(node).get("norm", "MAX"))
        if norm == "MAX":
            nodes = []
            reduce, total = self.reduce("ReduceMax", x, axis=1)
        elif norm in ("L1", "L2"):
            prepared, values = self.node("Abs", [x]) if norm == "L1" else self.node("Mul", [x, x])
            nodes = [prepared]
            reduce, total = self.reduce("ReduceSum", values, axis=1)
        else:
            return None
        nodes.append(reduce)
        if norm == "L2":
            root, total = self.node("Sqrt", [total])
            nodes.append(root)
        nodes.append(self.node("Div", [x, total], [node.output[0]])[0])
        return nodes

    def _gemm(self, x: str, coefficients: list[float], intercepts: list[float], rows: int) -> tuple[Any, str]:
        weights = np.asarray(coefficients, dtype=np.float32).reshape(rows, -1)
        bias = np.asarray(intercepts or [0.0] * rows, dtype=np.float32)
        return self.node("Gemm", [x, self.const("coef", weights), self.const("intercept", bias)], transB=1)

    def linear_classifier(self, node: Any, codes: Mapping[str, tuple[str, ...]]) -> list | None:
        a = _attrs(node)
        labels = a.get("classlabels_ints")
        post = _text(a.get("post_transform", "NONE"))
        intercepts = a.get("intercepts") or []
        # one score row per class (skl2onnx writes binary models that way too); a single
        # row for two classes scores them differently and is left to ONNX Runtime
        if not labels or len(labels) < 2 or post not in ("NONE", "LOGISTIC", "SOFTMAX"):
            return None
        rows = len(labels)
        if len(intercepts) != rows or len(a.get("coefficients", [])) % rows:
            return None
        gemm, raw = self._gemm(node.input[0], a["coefficients"], intercepts, rows)
        argmax, index = self.node("ArgMax", [raw], axis=1, keepdims=0)
        gather, _ = self.node(
            "Gather", [self.const("labels", np.asarray(labels, dtype=np.int64)), index], [node.output[0]], axis=0
        )
        nodes = [gemm, argmax, gather]
        if len(node.output) > 1 and node.output[1]:
            op = {"NONE": "Identity", "LOGISTIC": "Sigmoid", "SOFTMAX": "Softmax"}[post]
            nodes.append(self.node(op, [raw], [node.output[1]], **({"axis": 1} if op == "Softmax" else {}))[0])
        return nodes

    def linear_regressor(self, node: Any, codes: Mapping[str, tuple[str, ...]]) -> list | None:
        a = _attrs(node)
        if _text(a.get("post_transform", "NONE")) != "NONE":
            return None
        gemm, _ = self._gemm(node.input[0], a["coefficients"], a.get("intercepts"), int(a.get("targets", 1)))
        gemm.output[0] = node.output[0]
        return [gemm]

    def one_hot_encoder(self, node: Any, codes: Mapping[str, tuple[str, ...]]) -> list | None:
        a = _attrs(node)
        vocabulary = codes.get(node.input[0])
        if vocabulary is None or "cats_strings" not in a or int(a.get("zeros", 1)) != 1:
            return None
        positions = [vocabulary.index(_text(c)) for c in a["cats_strings"]]
        # codes [N, k] -> [N, k, 1] == positions [C] -> [N, k, C], as the operator's output
        reshape, column = self.node("Reshape", [node.input[0], self.const("shape", np.asarray([0, -1, 1]))])
        equal, hot = self.node("Equal", [column, self.const("positions", np.asarray(positions, dtype=np.int64))])
        cast, _ = self.node("Cast", [hot], [node.output[0]], to=1)  # FLOAT
        return [reshape, equal, cast]

    def label_encoder(self, node: Any, codes: Mapping[str, tuple[str, ...]]) -> list | None:
        a = _attrs(node)
        vocabulary = codes.get(node.input[0])
        if vocabulary is None or "keys_strings" not in a:
            return None
        if "values_int64s" in a:
            values, default, dtype = a["values_int64s"], a.get("default_int64", -1), np.int64
        elif "values_floats" in a:
            values, default, dtype = a["values_floats"], a.get("default_float", -0.0), np.float32
        else:
            return None
        mapping = dict(zip((_text(k) for k in a["keys_strings"]), values, strict=True))
        # table[code + 1]: position 0 answers the unknown code -1 with the operator's default
        table = np.asarray([default, *(mapping.get(v, default) for v in vocabulary)], dtype=dtype)
        shift, index = self.node("Add", [node.input[0], self.const("one", np.asarray(1, dtype=np.int64))])
        gather, _ = self.node("Gather", [self.const("table", table), index], [node.output[0]], axis=0)
        return [shift, gather]


_REWRITES = {
    "Imputer": _Lowering.imputer,
    "Scaler": _Lowering.scaler,
    "Normalizer": _Lowering.normalizer,
    "LinearClassifier": _Lowering.linear_classifier,
    "LinearRegressor": _Lowering.linear_regressor,
    "OneHotEncoder": _Lowering.one_hot_encoder,
    "LabelEncoder": _Lowering.label_encoder,
}
_ENCODERS = {"OneHotEncoder": "cats_strings", "LabelEncoder": "keys_strings"}


def _string_vocabularies(graph: Any) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(input -> vocabulary, tensor -> vocabulary) for the string inputs that only reach
    string encoders (through ops that pass values through); other string inputs stay."""
    from onnx import TensorProto

    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    by_input, by_tensor = {}, {}
    for graph_input in graph.input:
        if graph_input.type.tensor_type.elem_type != TensorProto.STRING:
            continue
        tensors, encoders, frontier, plain = {graph_input.name}, [], [graph_input.name], True
        while frontier and plain:
            for node in consumers.get(frontier.pop(), []):
                if node.domain == ML_DOMAIN and _ENCODERS.get(node.op_type) in _attrs(node):
                    encoders.append(node)
                elif node.domain in ("", "ai.onnx") and node.op_type in _PASS_THROUGH and node.input[0] in tensors:
                    tensors.add(node.output[0])
                    frontier.append(node.output[0])
                else:
                    plain = False
        if not plain or not encoders:
            continue
        vocabulary = tuple(
            dict.fromkeys(_text(key) for encoder in encoders for key in _attrs(encoder)[_ENCODERS[encoder.op_type]])
        )
        by_input[graph_input.name] = vocabulary
        by_tensor.update({tensor: vocabulary for tensor in tensors})
    return by_input, by_tensor


def _rewritten_nodes(proto: Any, coded: Mapping[str, tuple[str, ...]]) -> list:
    """The graph's nodes with every operator that can be rewritten replaced (constants are
    added to the graph's initializers); `coded` names the tensors that now carry codes."""
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 11)
    lowering = _Lowering(proto.graph, opset)
    nodes = []
    for node in proto.graph.node:
        rewrite = _REWRITES.get(node.op_type) if node.domain == ML_DOMAIN else None
        replacement = rewrite(lowering, node, coded) if rewrite else None
        nodes.extend(replacement if replacement is not None else [node])
    return nodes


def lower_ml_ops(model: bytes) -> LoweredModel:
    """`model` with its rewritable `ai.onnx.ml` operators written as standard ONNX ops.

    Returns `model` unchanged when it has none of them (nothing is serialised again then)."""
    import onnx

    proto = onnx.load_from_string(model)
    if not any(n.domain == ML_DOMAIN and n.op_type in _REWRITES for n in proto.graph.node):
        return LoweredModel(model)
    vocabularies, coded = _string_vocabularies(proto.graph)
    nodes = _rewritten_nodes(proto, coded)
    if any(n.domain == ML_DOMAIN and set(n.input) & set(coded) for n in nodes):
        # an encoder of a recoded input could not be rewritten: keep the string inputs
        proto, vocabularies, coded = onnx.load_from_string(model), {}, {}
        nodes = _rewritten_nodes(proto, coded)
    graph = proto.graph
    del graph.node[:]
    graph.node.extend(nodes)
    for graph_input in graph.input:
        if graph_input.name in vocabularies:
            graph_input.type.tensor_type.elem_type = onnx.TensorProto.INT64
    kept_info = [v for v in graph.value_info if v.name not in coded]  # their types changed with the codes
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    if not any(n.domain == ML_DOMAIN for n in graph.node):
        kept = [o for o in proto.opset_import if o.domain != ML_DOMAIN]
        del proto.opset_import[:]
        proto.opset_import.extend(kept)
    return LoweredModel(proto.SerializeToString(), vocabularies)
