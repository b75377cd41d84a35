"""The step after a boosted-trees ensemble's summed raw score (LightGBM, XGBoost): the
objective's link to the prediction, and a classifier's label output."""

from __future__ import annotations

from typing import Any

from automl_tasks.core.errors import ExportError


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
