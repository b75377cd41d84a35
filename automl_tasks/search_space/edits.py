"""Edits of a search-space document that an accepted advisor suggestion makes.

Each edit works on the YAML document (not the parsed `SearchSpace`), so the result is a
document a person can read, diff and edit further; the result is parsed again, so an edit
never yields a space the language rejects. Parameters are named as everywhere else:
`<parent>.<value>.<child>` (e.g. `model.lightgbm.learning_rate`).
"""

from __future__ import annotations

import copy
import difflib
import math
from pathlib import Path
from typing import Any

import yaml

from automl_tasks.core.errors import SearchSpaceError
from automl_tasks.search_space.language import NUMERIC_TYPES, load_search_space, parse_search_space

#: a widened range grows by this share of its span (in log space for `_log` types) ...
WIDEN_SHARE = 0.5
#: ... and a log range by at most this factor, so one click never jumps to absurd values
MAX_LOG_FACTOR = 3.0


def canonical_yaml(text: str) -> str:
    """The document as loopml writes it (comments and flow style dropped), for diffs."""
    return yaml.safe_dump(yaml.safe_load(text), sort_keys=False, default_flow_style=None, width=100)


def space_diff(parent_text: str, child_text: str, *, parent_name: str = "parent", child_name: str = "child") -> str:
    """Unified diff of two spaces in canonical form: only what changed, not the formatting."""
    lines = difflib.unified_diff(
        canonical_yaml(parent_text).splitlines(keepends=True),
        canonical_yaml(child_text).splitlines(keepends=True),
        fromfile=parent_name,
        tofile=child_name,
    )
    return "".join(lines)


def locate_param(document: dict[str, Any], full_name: str) -> dict[str, Any]:
    """The raw mapping of parameter `full_name` inside `document` (SearchSpaceError if absent)."""
    parts = full_name.split(".")
    params = document.get("params") or []
    path = "params"
    while True:
        name = parts[0]
        index = next((i for i, p in enumerate(params) if isinstance(p, dict) and p.get("name") == name), None)
        if index is None:
            raise SearchSpaceError(path, f"the space has no parameter {full_name!r}")
        param = params[index]
        if len(parts) == 1:
            return param
        if len(parts) < 3:
            raise SearchSpaceError(f"{path}[{index}]", f"{full_name!r} is not a parameter name")
        value, parts = parts[1], parts[2:]
        submodule = param.get("submodule") or {}
        key = next((k for k in submodule if str(k) == value), None)
        if key is None:
            raise SearchSpaceError(f"{path}[{index}].submodule", f"{name} has no sub-parameters under {value!r}")
        params, path = submodule[key], f"{path}[{index}].submodule.{key}"


def widen_range(document: dict[str, Any], name: str, edge: str) -> str:
    """Grow `name`'s range past its `edge` ("lower" or "upper"); a description of the change."""
    param = locate_param(document, name)
    ptype = param["type"]
    if ptype not in NUMERIC_TYPES:
        raise SearchSpaceError(name, f"{name} is {ptype}, not numeric: its range cannot be widened")
    low, high = param["range"]
    if param.get("bounded"):
        raise SearchSpaceError(name, f"{name}'s range {[low, high]} is its natural domain (bounded): it cannot grow")
    is_log, is_int = ptype.endswith("_log"), ptype.startswith("int")
    factor = min((high / low) ** WIDEN_SHARE, MAX_LOG_FACTOR) if is_log else 0.0
    if edge == "lower":
        if is_log:
            new = low / factor
        else:
            new = low - (high - low) * WIDEN_SHARE
            new = max(new, low / 2) if low > 0 else new  # a positive range stays positive
        # an integer range grows by at least one step, where its floor allows
        new = min(math.ceil(new), low - 1) if is_int else float(f"{new:.4g}")
        if is_int and (low >= 1 > new or (is_log and new < 1)):
            new = low
    elif edge == "upper":
        new = high * factor if is_log else high + (high - low) * WIDEN_SHARE
        new = max(math.floor(new), high + 1) if is_int else float(f"{new:.4g}")
    else:
        raise SearchSpaceError(name, f"edge must be 'lower' or 'upper'; got {edge!r}")
    if new == (low if edge == "lower" else high):
        raise SearchSpaceError(name, f"{name}'s range {[low, high]} cannot grow past its {edge} end")
    param["range"] = [new, high] if edge == "lower" else [low, new]
    return f"widened {name} from {[low, high]} to {param['range']}"


def fix_param(document: dict[str, Any], name: str, value: Any) -> str:
    """Fix `name` to `value` (a one-choice parameter, so it is still recorded on every trial)."""
    param = locate_param(document, name)
    ptype = param["type"]
    if ptype in NUMERIC_TYPES:
        is_int = ptype.startswith("int")
        if is_int and value != int(value):
            raise SearchSpaceError(name, f"{name} is an integer; cannot fix it to {value!r}")
        param["type"] = "int_cat" if is_int else "float_cat"
        value = int(value) if is_int else float(value)
        param.pop("bounded", None)
    else:
        if ptype == "bool":
            param.setdefault("range", [False, True])  # the language's range of a bool given none
        if value not in param["range"]:
            raise SearchSpaceError(name, f"{value!r} is not one of {name}'s choices {param['range']}")
    before = param["range"]
    param["range"] = [value]
    param["default"] = value
    submodule = param.get("submodule")
    if submodule:  # the other choices' sub-parameters can no longer be reached
        param["submodule"] = {k: v for k, v in submodule.items() if k == value}
    return f"fixed {name} to {value!r} (was {before})"


def drop_choice(document: dict[str, Any], name: str, choice: Any) -> str:
    """Remove `choice` from categorical `name` (e.g. a model family) with its sub-parameters."""
    param = locate_param(document, name)
    if param["type"] in NUMERIC_TYPES:
        raise SearchSpaceError(name, f"{name} is numeric; only a categorical parameter has choices to drop")
    if choice not in param["range"]:
        raise SearchSpaceError(name, f"{choice!r} is not one of {name}'s choices {param['range']}")
    if len(param["range"]) == 1:
        raise SearchSpaceError(name, f"{choice!r} is {name}'s only choice; it cannot be dropped")
    param["range"] = [c for c in param["range"] if c != choice]
    if param.get("default") == choice:
        del param["default"]
    if param.get("submodule"):
        param["submodule"] = {k: v for k, v in param["submodule"].items() if k != choice}
    return f"dropped {choice!r} from {name} (now {param['range']})"


def apply_edit(text: str, kind: str, param: str, value: Any = None) -> tuple[str, str]:
    """(new YAML document, description) of one edit of `text`: `widen_range` (value: the
    edge), `fix_param` (value: the value) or `drop_choice` (value: the choice). The result is
    validated; a fault raises SearchSpaceError with its YAML path and `text` is untouched."""
    document = copy.deepcopy(yaml.safe_load(load_text(text)))
    edits = {"widen_range": widen_range, "fix_param": fix_param, "drop_choice": drop_choice}
    if kind not in edits:
        raise SearchSpaceError("$", f"no search-space edit for a {kind!r} suggestion; editable: {sorted(edits)}")
    change = edits[kind](document, param, value)
    parse_search_space(document)
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100), change


def load_text(text_or_path: str) -> str:
    """The YAML text of a space given as text or as a path (validated)."""
    load_search_space(text_or_path)
    return Path(text_or_path).read_text() if _is_path(text_or_path) else text_or_path


def _is_path(text: str) -> bool:
    return "\n" not in text and text.endswith((".yaml", ".yml"))
