"""An algorithm's `algorithm.yaml` (YMIR-style task protocol): what it is and how to run it.

Keys: name, version, description, estimator (`package.module:Class`), task_types,
search_space (inline YAML tree or a path relative to the file), default hyperparameters
(`defaults`, else the space's defaults), fidelity (the parameter that counts epochs or
rounds, if any), smoke_test (bundled dataset, target, task type, metric), inference
(batch_size, devices), deployment (target_devices, latency_budget_ms), resources (what one
trial's worker needs: cpu, memory, gpu; a worker pod asks Kubernetes for them) and, for built-in
algorithms only, `needs_registration: false` when loopml's own test suite checks its
capabilities (a workspace then need not register it before deploying it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from automl_tasks.core.errors import ConfigurationError
from automl_tasks.search_space import SearchSpace, load_search_space

REQUIRED = ("name", "version", "estimator", "task_types", "search_space", "smoke_test")
#: Kubernetes quantity suffixes (binary and decimal) a memory or cpu value may carry
_QUANTITY_SUFFIXES = ("Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T", "m")


@dataclass(frozen=True)
class Resources:
    """What one trial's worker needs (Kubernetes quantities): a worker pod requests them,
    its limits equal the requests, and `gpu` asks for `nvidia.com/gpu`."""

    cpu: str = "1"
    memory: str = "2Gi"
    gpu: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "memory": self.memory, "gpu": self.gpu}

    def requirements(self) -> dict[str, dict[str, str]]:
        """The container's `resources` (requests = limits, so the scheduler reserves them)."""
        wanted = {"cpu": self.cpu, "memory": self.memory, **({"nvidia.com/gpu": str(self.gpu)} if self.gpu else {})}
        return {"requests": dict(wanted), "limits": dict(wanted)}

    @classmethod
    def parse(cls, raw: Any, where: str) -> Resources:
        """`raw` (the YAML mapping) checked; errors name `where` and the key."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"cpu", "memory", "gpu"}:
            raise ConfigurationError(f"{where}: resources: expected a mapping of cpu, memory, gpu; got {raw!r}")
        found = cls(
            cpu=str(raw.get("cpu", cls.cpu)), memory=str(raw.get("memory", cls.memory)), gpu=raw.get("gpu", cls.gpu)
        )
        for key in ("cpu", "memory"):
            if not _is_quantity(getattr(found, key)):
                raise ConfigurationError(
                    f"{where}: resources.{key}: expected a Kubernetes quantity such as 2, 500m or 4Gi; got {raw[key]!r}"
                )
        if isinstance(found.gpu, bool) or not isinstance(found.gpu, int) or found.gpu < 0:
            raise ConfigurationError(f"{where}: resources.gpu: expected a whole number >= 0; got {raw['gpu']!r}")
        return found


def _is_quantity(text: str) -> bool:
    number = next((text[: -len(s)] for s in _QUANTITY_SUFFIXES if text.endswith(s)), text)
    try:
        return float(number) > 0
    except ValueError:
        return False


TASK_TYPES = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class AlgorithmSpec:
    """A parsed, checked algorithm.yaml."""

    name: str
    version: str
    estimator: str
    task_types: tuple[str, ...]
    space_yaml: str
    smoke_test: dict[str, str]
    source: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    fidelity: str | None = None
    inference: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)
    needs_registration: bool = True
    resources: Resources = field(default_factory=Resources)

    def space(self) -> SearchSpace:
        return load_search_space(self.space_yaml)

    def default_config(self) -> dict[str, Any]:
        return dict(self.defaults) or self.space().default_config()

    @property
    def batch_size(self) -> int:
        return int(self.inference.get("batch_size", 1000))


def _fail(path: Path, key: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{path}: {key}: {problem}")


def load_spec(path: Path) -> AlgorithmSpec:
    """Parse `path` (an algorithm.yaml or the folder holding one); errors name the file and key."""
    path = path / "algorithm.yaml" if path.is_dir() else path
    if not path.exists():
        raise ConfigurationError(f"{path}: no algorithm.yaml there")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise _fail(path, "$", "expected a mapping")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise _fail(path, "$", f"missing keys {missing}")
    if ":" not in str(raw["estimator"]):
        raise _fail(path, "estimator", f"expected 'package.module:Class'; got {raw['estimator']!r}")
    task_types = tuple(raw["task_types"] or ())
    if not task_types or set(task_types) - set(TASK_TYPES):
        raise _fail(path, "task_types", f"expected a list from {list(TASK_TYPES)}; got {raw['task_types']!r}")
    space = raw["search_space"]
    space_yaml = (path.parent / space).read_text() if isinstance(space, str) else yaml.safe_dump(space)
    smoke = raw["smoke_test"]
    if not isinstance(smoke, dict) or not {"dataset", "target", "task_type", "metric"} <= set(smoke):
        raise _fail(path, "smoke_test", "expected dataset, target, task_type and metric")
    return AlgorithmSpec(
        name=str(raw["name"]),
        version=str(raw["version"]),
        estimator=str(raw["estimator"]),
        task_types=task_types,
        space_yaml=space_yaml,
        smoke_test={k: str(v) for k, v in smoke.items()},
        source=str(path),
        description=str(raw.get("description", "")),
        defaults=dict(raw.get("defaults") or {}),
        fidelity=raw.get("fidelity"),
        inference=dict(raw.get("inference") or {}),
        deployment=dict(raw.get("deployment") or {}),
        needs_registration=bool(raw.get("needs_registration", True)),
        resources=Resources.parse(raw.get("resources"), str(path)),
    )
