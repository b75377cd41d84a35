"""The loopml search-space language: a YAML tree compiled into Optuna define-by-run sampling.

The document follows OmniForce's multilayer example: each parameter has a `name`, a
`type` and a `range`; a categorical parameter may carry a `submodule` mapping from one
of its values to the parameters that exist only under that value. Types and conditions
follow VEGA: int, int_log, int_cat, float, float_log, float_cat, string (alias
categorical), bool; conditions equal / not_equal / in; `forbidden` combinations.

A child parameter's full name is `<parent>.<value>.<child>` so every name is unique and
its meaning is visible in MLflow and the Optuna dashboard.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from automl_tasks.core.errors import SearchSpaceError

NUMERIC_TYPES = ("int", "int_log", "float", "float_log")
CATEGORICAL_TYPES = ("int_cat", "float_cat", "string", "categorical", "bool")
PARAM_TYPES = NUMERIC_TYPES + CATEGORICAL_TYPES
CONDITION_TYPES = ("equal", "not_equal", "in")


class ForbiddenConfiguration(Exception):
    """A sampled configuration matches a `forbidden` combination of the space."""


@dataclass(frozen=True)
class Param:
    """One tunable parameter; `children` maps a categorical value to its sub-parameters."""

    name: str
    type: str
    range: tuple[Any, ...]
    default: Any = None
    bounded: bool = False  # the range is the parameter's natural domain (e.g. a ratio in [0, 1])
    children: Mapping[Any, tuple[Param, ...]] = field(default_factory=dict)

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    def default_value(self) -> Any:
        """The declared default, else the first choice or the (geometric) middle of the range."""
        if self.default is not None:
            return self.default
        if not self.is_numeric:
            return self.range[0]
        low, high = self.range
        middle = math.sqrt(low * high) if self.type.endswith("_log") else (low + high) / 2
        return int(round(middle)) if self.type.startswith("int") else float(middle)


@dataclass(frozen=True)
class Condition:
    """`child` exists only when `parent`'s value satisfies `type` against `values`."""

    child: str
    parent: str
    type: str
    values: tuple[Any, ...]

    def holds(self, parent_value: Any) -> bool:
        if self.type == "equal":
            return parent_value == self.values[0]
        if self.type == "not_equal":
            return parent_value != self.values[0]
        return parent_value in self.values


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated search space; `sample(trial)` draws one configuration."""

    params: tuple[Param, ...]
    conditions: tuple[Condition, ...] = ()
    forbidden: tuple[Mapping[str, Any], ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """Stable short hash of the document, recorded on trials and model versions."""
        canonical = json.dumps(self.source, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def sample(self, trial: Any) -> dict[str, Any]:
        """Suggest every active parameter on an Optuna trial; raise if the result is forbidden."""
        config: dict[str, Any] = {}
        self._walk(self.params, "", config, lambda p, name: _suggest(trial, p, name))
        self._check_forbidden(config)
        return config

    def default_config(self) -> dict[str, Any]:
        """The configuration made of every parameter's default (for the baseline trial)."""
        config: dict[str, Any] = {}
        self._walk(self.params, "", config, lambda p, name: p.default_value())
        self._check_forbidden(config)
        return config

    def grid(self, points_per_numeric: int = 5, limit: int = 10_000) -> list[dict[str, Any]]:
        """Every configuration of the space, numeric ranges cut into `points_per_numeric`
        evenly spaced values (geometric for `_log` types); forbidden ones left out.

        Raises SearchSpaceError when the grid would exceed `limit` configurations."""
        configs: list[dict[str, Any]] = []

        def expand(pending: list[tuple[Param, str]], config: dict[str, Any]) -> None:
            if len(configs) > limit:
                raise SearchSpaceError("grid", f"more than {limit} configurations; use another strategy")
            if not pending:
                try:
                    self._check_forbidden(config)
                except ForbiddenConfiguration:
                    return
                configs.append(dict(config))
                return
            (p, name), rest = pending[0], pending[1:]
            if not self._active(name, config):
                expand(rest, config)
                return
            for value in _grid_values(p, points_per_numeric):
                kids = [(kid, f"{name}.{value}.{kid.name}") for kid in p.children.get(value, ())]
                expand(kids + rest, {**config, name: value})

        expand([(p, p.name) for p in self.params], {})
        return configs

    def names(self) -> list[str]:
        """Every parameter's full name, active or not."""
        out: list[str] = []

        def visit(params: tuple[Param, ...], prefix: str) -> None:
            for p in params:
                out.append(prefix + p.name)
                for value, kids in p.children.items():
                    visit(kids, f"{prefix}{p.name}.{value}.")

        visit(self.params, "")
        return out

    def find(self, full_name: str) -> Param | None:
        def visit(params: tuple[Param, ...], prefix: str) -> Param | None:
            for p in params:
                if prefix + p.name == full_name:
                    return p
                for value, kids in p.children.items():
                    found = visit(kids, f"{prefix}{p.name}.{value}.")
                    if found:
                        return found
            return None

        return visit(self.params, "")

    def admits(self, config: Mapping[str, Any]) -> bool:
        """Whether `config` is one configuration of this space: every active parameter set,
        each value in its range, no other key, no forbidden combination (a configuration
        from another space may be enqueued only then)."""

        def given(p: Param, name: str) -> Any:
            value = config[name]  # KeyError: an active parameter is missing
            if not _in_range(p.type, p.range, value):
                raise ValueError(name)
            if p.is_numeric and (isinstance(value, bool) or (p.type.startswith("int") and value != int(value))):
                raise ValueError(name)
            return value

        walked: dict[str, Any] = {}
        try:
            self._walk(self.params, "", walked, given)
            self._check_forbidden(walked)
        except (KeyError, ValueError, ForbiddenConfiguration):
            return False
        return walked == dict(config)

    def project(self, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """`config` (from a study over another version of this space) as a configuration of
        this space: its values that are still in range, a one-choice parameter's value,
        nothing else; None when it does not fit (e.g. its model family was dropped).
        Warm-starts the re-run after a person edits the space."""

        def choose(p: Param, name: str) -> Any:
            if name in config and _in_range(p.type, p.range, config[name]):
                return config[name]
            if not p.is_numeric and len(p.range) == 1:
                return p.range[0]
            raise KeyError(name)

        projected: dict[str, Any] = {}
        try:
            self._walk(self.params, "", projected, choose)
        except KeyError:
            return None
        return projected if self.admits(projected) else None

    def _walk(self, params: tuple[Param, ...], prefix: str, config: dict[str, Any], choose: Any) -> None:
        for p in params:
            name = prefix + p.name
            if not self._active(name, config):
                continue
            value = choose(p, name)
            config[name] = value
            if value in p.children:
                self._walk(p.children[value], f"{name}.{value}.", config, choose)

    def _active(self, name: str, config: Mapping[str, Any]) -> bool:
        for condition in self.conditions:
            if condition.child == name:
                if condition.parent not in config or not condition.holds(config[condition.parent]):
                    return False
        return True

    def _check_forbidden(self, config: Mapping[str, Any]) -> None:
        for combination in self.forbidden:
            if all(config.get(k, _MISSING) == v for k, v in combination.items()):
                raise ForbiddenConfiguration(f"forbidden combination {dict(combination)}")


_MISSING = object()


def _grid_values(p: Param, points: int) -> list[Any]:
    if not p.is_numeric:
        return list(p.range)
    low, high = p.range
    if p.type.endswith("_log"):
        values = [low * (high / low) ** (i / (points - 1)) for i in range(points)]
    else:
        values = [low + (high - low) * i / (points - 1) for i in range(points)]
    if p.type.startswith("int"):
        return sorted({int(round(v)) for v in values})
    return [float(v) for v in values]


def _suggest(trial: Any, p: Param, name: str) -> Any:
    if p.type in ("int", "int_log"):
        return trial.suggest_int(name, p.range[0], p.range[1], log=p.type == "int_log")
    if p.type in ("float", "float_log"):
        return trial.suggest_float(name, p.range[0], p.range[1], log=p.type == "float_log")
    return trial.suggest_categorical(name, list(p.range))


# ----------------------------------------------------------------------------- parsing


def load_search_space(text_or_path: str) -> SearchSpace:
    """Parse a YAML document, or a path to one, into a validated `SearchSpace`."""
    text = text_or_path
    if "\n" not in text_or_path and text_or_path.endswith((".yaml", ".yml")):
        from pathlib import Path

        path = Path(text_or_path)
        if not path.exists():
            raise SearchSpaceError("<file>", f"search-space file {text_or_path!r} does not exist")
        text = path.read_text()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<document>"
        raise SearchSpaceError(where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    return parse_search_space(document)


def parse_search_space(document: Any) -> SearchSpace:
    """Validate a loaded document; errors carry the path of the fault (e.g. params[0].range)."""
    if not isinstance(document, Mapping):
        raise SearchSpaceError("$", f"expected a mapping with a 'params' list; got {type(document).__name__}")
    unknown = set(document) - {"params", "conditions", "forbidden", "version", "description"}
    if unknown:
        raise SearchSpaceError("$", f"unknown keys {sorted(unknown)}; expected params, conditions, forbidden")
    params = _parse_params(document.get("params"), "params")
    names = _all_names(params, "")
    order = {n: i for i, n in enumerate(names)}
    conditions = tuple(
        _parse_condition(c, f"conditions[{i}]", order) for i, c in enumerate(document.get("conditions") or [])
    )
    forbidden = tuple(
        _parse_forbidden(f, f"forbidden[{i}]", order) for i, f in enumerate(document.get("forbidden") or [])
    )
    return SearchSpace(params=params, conditions=conditions, forbidden=forbidden, source=dict(document))


def _parse_params(raw: Any, path: str) -> tuple[Param, ...]:
    if not isinstance(raw, list) or not raw:
        raise SearchSpaceError(path, "expected a non-empty list of parameters")
    seen: set[str] = set()
    out = []
    for i, item in enumerate(raw):
        param = _parse_param(item, f"{path}[{i}]")
        if param.name in seen:
            raise SearchSpaceError(f"{path}[{i}].name", f"duplicate parameter name {param.name!r}")
        seen.add(param.name)
        out.append(param)
    return tuple(out)


def _parse_param(raw: Any, path: str) -> Param:
    if not isinstance(raw, Mapping):
        raise SearchSpaceError(path, f"expected a mapping with name, type, range; got {raw!r}")
    unknown = set(raw) - {"name", "type", "range", "default", "bounded", "submodule", "description"}
    if unknown:
        raise SearchSpaceError(path, f"unknown keys {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name or "." in name:
        raise SearchSpaceError(f"{path}.name", f"expected a non-empty name without '.'; got {name!r}")
    ptype = raw.get("type")
    if ptype not in PARAM_TYPES:
        raise SearchSpaceError(f"{path}.type", f"expected one of {list(PARAM_TYPES)}; got {ptype!r}")
    values = [False, True] if ptype == "bool" and "range" not in raw else raw.get("range")
    rng = _parse_range(ptype, values, f"{path}.range")
    default = raw.get("default")
    if default is not None:
        _check_in_range(ptype, rng, default, f"{path}.default")
    children: dict[Any, tuple[Param, ...]] = {}
    submodule = raw.get("submodule")
    if submodule is not None:
        if ptype in NUMERIC_TYPES:
            raise SearchSpaceError(f"{path}.submodule", "only categorical parameters can have a submodule")
        if not isinstance(submodule, Mapping):
            raise SearchSpaceError(f"{path}.submodule", "expected a mapping from a value to a parameter list")
        for value, kids in submodule.items():
            if value not in rng:
                raise SearchSpaceError(
                    f"{path}.submodule.{value}", f"{value!r} is not in the parent's range {list(rng)}"
                )
            children[value] = _parse_params(kids, f"{path}.submodule.{value}")
    bounded = raw.get("bounded", False)
    if not isinstance(bounded, bool):
        raise SearchSpaceError(f"{path}.bounded", f"expected true or false; got {bounded!r}")
    return Param(name=name, type=ptype, range=rng, default=default, bounded=bounded, children=children)


def _parse_range(ptype: str, values: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(values, list) or not values:
        raise SearchSpaceError(path, f"expected a non-empty list; got {values!r}")
    if ptype in NUMERIC_TYPES:
        kind = int if ptype.startswith("int") else (int, float)
        if len(values) != 2 or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
            expected = "two integers" if kind is int else "two numbers"
            raise SearchSpaceError(path, f"expected [low, high] with {expected}; got {values!r}")
        low, high = values
        if low >= high:
            raise SearchSpaceError(path, f"expected low < high; got {values!r}")
        if ptype.endswith("_log") and low <= 0:
            raise SearchSpaceError(path, f"a log range needs low > 0; got {values!r}")
        return (low, high)
    checks = {
        "int_cat": int,
        "float_cat": (int, float),
        "string": str,
        "categorical": (str, int, float, bool),
        "bool": bool,
    }
    for j, v in enumerate(values):
        if not isinstance(v, checks[ptype]) or (ptype != "bool" and ptype != "categorical" and isinstance(v, bool)):
            raise SearchSpaceError(f"{path}[{j}]", f"expected a {ptype} value; got {v!r}")
    if len(set(values)) != len(values):
        raise SearchSpaceError(path, f"duplicate choices in {values!r}")
    return tuple(values)


def _in_range(ptype: str, rng: tuple[Any, ...], value: Any) -> bool:
    if ptype in NUMERIC_TYPES:
        return isinstance(value, (int, float)) and rng[0] <= value <= rng[1]
    return value in rng


def _check_in_range(ptype: str, rng: tuple[Any, ...], value: Any, path: str) -> None:
    if not _in_range(ptype, rng, value):
        raise SearchSpaceError(path, f"default {value!r} is outside the range {list(rng)}")


def _all_names(params: tuple[Param, ...], prefix: str) -> list[str]:
    names: list[str] = []
    for p in params:
        names.append(prefix + p.name)
        for value, kids in p.children.items():
            names.extend(_all_names(kids, f"{prefix}{p.name}.{value}."))
    return names


def _parse_condition(raw: Any, path: str, order: Mapping[str, int]) -> Condition:
    if not isinstance(raw, Mapping):
        raise SearchSpaceError(path, "expected a mapping with child, parent, type, range")
    child, parent, ctype = raw.get("child"), raw.get("parent"), raw.get("type")
    for key, value in (("child", child), ("parent", parent)):
        if value not in order:
            raise SearchSpaceError(f"{path}.{key}", f"unknown parameter {value!r}; known: {sorted(order)}")
    if order[parent] >= order[child]:
        raise SearchSpaceError(f"{path}.parent", f"parent {parent!r} must be declared before child {child!r}")
    if ctype not in CONDITION_TYPES:
        raise SearchSpaceError(f"{path}.type", f"expected one of {list(CONDITION_TYPES)}; got {ctype!r}")
    values = raw.get("range")
    if not isinstance(values, list) or not values:
        raise SearchSpaceError(f"{path}.range", f"expected a non-empty list of parent values; got {values!r}")
    if ctype != "in" and len(values) != 1:
        raise SearchSpaceError(f"{path}.range", f"'{ctype}' takes exactly one value; got {values!r}")
    return Condition(child=child, parent=parent, type=ctype, values=tuple(values))


def _parse_forbidden(raw: Any, path: str, order: Mapping[str, int]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping) or len(raw) < 2:
        raise SearchSpaceError(path, "expected a mapping of at least two parameter names to values")
    for key in raw:
        if key not in order:
            raise SearchSpaceError(f"{path}.{key}", f"unknown parameter {key!r}")
    return dict(raw)
