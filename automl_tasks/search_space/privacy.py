"""Differential privacy as a choice of the search: a space whose models all train with DP-SGD.

Only torch networks have a DP trainer in loopml (estimators/private_training): in the
tabular space that is the `mlp` model choice, so a private search fixes `model` to `mlp`
and fixes its `dp_epsilon`. An algorithm whose estimator trains privately itself declares
a top-level `dp_epsilon` parameter in its space (the digits CNN does, 0 = off), which a
private search fixes. A space with neither is refused with the reason, since searching
models that ignore the epsilon would register a model that is not private.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from automl_tasks.core.errors import SearchSpaceError
from automl_tasks.search_space.edits import fix_param, load_text, locate_param
from automl_tasks.search_space.language import parse_search_space

#: the model choice that trains with DP-SGD, and its privacy parameter
PRIVATE_MODEL, DP_PARAM = "mlp", "dp_epsilon"


def searched_space(text: str, dp_epsilon: float) -> str:
    """The space a search runs: `text` itself, or its private restriction when `dp_epsilon` > 0."""
    return private_space(text, float(dp_epsilon)) if dp_epsilon else text


def private_space(text: str, epsilon: float) -> str:
    """`text` (a tabular search space) restricted to models trained with DP-SGD at `epsilon`."""
    if epsilon <= 0:
        raise SearchSpaceError(DP_PARAM, f"dp_epsilon must be > 0; got {epsilon!r}")
    document: dict[str, Any] = copy.deepcopy(yaml.safe_load(load_text(text)))
    knob = next((p for p in document.get("params", []) if p.get("name") == DP_PARAM), None)
    if knob is not None:  # the algorithm's own DP knob, whatever choices it lists
        knob.update(type="float_cat", range=[float(epsilon)], default=float(epsilon))
        knob.pop("bounded", None)
        parse_search_space(document)
        return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)
    try:
        model = locate_param(document, "model")
    except SearchSpaceError:
        raise SearchSpaceError(
            "model",
            "differential privacy needs a `model` parameter with the `mlp` choice (the torch MLP) or a "
            f"`{DP_PARAM}` parameter of an algorithm that trains privately itself",
        ) from None
    if PRIVATE_MODEL not in model.get("range", []):
        raise SearchSpaceError(
            "model",
            f"differential privacy is offered for the torch MLP only; this space's models are {model.get('range')} "
            "(tree models have no DP trainer in loopml)",
        )
    fix_param(document, "model", PRIVATE_MODEL)
    branch = model.setdefault("submodule", {}).setdefault(PRIVATE_MODEL, [])
    branch[:] = [p for p in branch if p.get("name") != DP_PARAM]
    branch.append({"name": DP_PARAM, "type": "float_cat", "range": [float(epsilon)], "default": float(epsilon)})
    parse_search_space(document)
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)
