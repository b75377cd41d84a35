"""Deployment targets: a named engine with its settings, defined in YAML in the workspace.

`<workspace>/deploy_targets.yaml` (optional) adds targets or replaces the built-in ones::

    targets:
      edge-cpu:
        engine: openvino
        options: {threads: 1}
        description: one core, OpenVINO

Built-ins: `cloud-cpu` (ONNX Runtime, all cores), `edge-cpu` (OpenVINO, 1 thread),
`gpu` (TensorRT FP16) and `auto-cpu` (engine `auto`, 1 thread: every engine available
here is compiled, checked and measured, and the fastest deployable one at batch 1 is
chosen; the design's choice of the deployment engine by measurement). A target's engine and options are checked when it is loaded, so a
typo fails with the file, the target and the field named, before any model is built.
The search (`search.deployment`, through `deploy.compile_cache`) and the registration
(`deploy.runtime.on_target`) call `evaluate_on_target` and `target_metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from automl_tasks.core.errors import ConfigurationError, UnknownBackendError
from automl_tasks.core.tags import DEPLOY_ENGINE_TAG, DEPLOY_TARGET_TAG, DEPLOY_VERDICT_TAG
from automl_tasks.deploy.backends.base import BackendOptions, Feed, OnnxSource, read_model
from automl_tasks.deploy.backends.registry import REFERENCE, backend_names, get_backend
from automl_tasks.deploy.backends.verdict import EngineResult, evaluate

log = logging.getLogger(__name__)

TARGETS_FILE = "deploy_targets.yaml"
#: a target's engine chosen by measurement among the engines available here
AUTO_ENGINE = "auto"


@dataclass(frozen=True)
class DeploymentTarget:
    name: str
    engine: str
    options: BackendOptions = field(default_factory=BackendOptions)
    description: str = ""

    def unavailable_reason(self) -> str | None:
        """Why this target's engine cannot run here (None when it can)."""
        if self.engine == AUTO_ENGINE:
            return None if candidate_engines(self.options) else "no deployment engine is available here"
        return get_backend(self.engine).unavailable_reason()

    def serves_with(self, engine: str) -> bool:
        """Whether a version on `engine` was chosen for this target (its options apply)."""
        return self.engine in (engine, AUTO_ENGINE)


BUILTIN_TARGETS: dict[str, dict[str, Any]] = {
    "cloud-cpu": {"engine": "onnxruntime", "options": {}, "description": "ONNX Runtime, all cores"},
    "edge-cpu": {"engine": "openvino", "options": {"threads": 1}, "description": "OpenVINO on one core"},
    "gpu": {"engine": "tensorrt", "options": {"precision": "fp16"}, "description": "TensorRT FP16 on an NVIDIA GPU"},
    "auto-cpu": {"engine": AUTO_ENGINE, "options": {"threads": 1}, "description": "the fastest engine here, one core"},
}


def _target(name: str, block: Any, source: str) -> DeploymentTarget:
    where = f"{source}: targets.{name}"
    if not isinstance(block, Mapping):
        raise ConfigurationError(f"{where}: expected a mapping with 'engine' and 'options', got {block!r}")
    unknown = sorted(set(block) - {"engine", "options", "description"})
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {unknown}; known: description, engine, options")
    engine = block.get("engine")
    if engine != AUTO_ENGINE and engine not in backend_names():
        raise ConfigurationError(
            f"{where}.engine: unknown deployment engine {engine!r}; known engines: "
            f"{', '.join(backend_names())}, or {AUTO_ENGINE} (the fastest available, by measurement)"
        )
    try:
        options = BackendOptions.coerce(block.get("options") or {})
        if engine != AUTO_ENGINE:
            get_backend(engine).tolerance(options.precision)
    except (ConfigurationError, TypeError, UnknownBackendError) as exc:
        raise ConfigurationError(f"{where}.options: {exc}") from exc
    return DeploymentTarget(name, engine, options, str(block.get("description", "")))


def load_targets(workspace_home: Path | None = None) -> dict[str, DeploymentTarget]:
    """The built-in targets, overridden and extended by the workspace's YAML file if it has one."""
    targets = {name: _target(name, block, "built-in targets") for name, block in BUILTIN_TARGETS.items()}
    path = Path(workspace_home) / TARGETS_FILE if workspace_home is not None else None
    if path is not None and path.exists():
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
        blocks = document.get("targets") if isinstance(document, Mapping) else None
        if not isinstance(blocks, Mapping):
            raise ConfigurationError(f"{path}: expected a top-level 'targets:' mapping")
        targets.update({str(name): _target(str(name), block, str(path)) for name, block in blocks.items()})
    return targets


def get_target(name: str, workspace_home: Path | None = None) -> DeploymentTarget:
    targets = load_targets(workspace_home)
    if name not in targets:
        raise ConfigurationError(f"unknown deployment target {name!r}; known targets: {', '.join(sorted(targets))}")
    return targets[name]


def candidate_engines(options: BackendOptions) -> list[str]:
    """The engines an `auto` target chooses among: available here and offering its precision."""
    names = []
    for name in backend_names():
        backend = get_backend(name)
        if options.precision in backend.tolerances and backend.unavailable_reason() is None:
            names.append(name)
    return names


def evaluate_on_target(target: DeploymentTarget, onnx_model: OnnxSource, feed: Feed, **kwargs: Any) -> EngineResult:
    """Compile, check and measure `onnx_model` on the target's engine with its options.

    An `auto` target measures every candidate engine and returns the fastest deployable one
    at the smallest batch measured (the verdict names it); when none is deployable, the
    reference engine's result (or the first), whose verdict says why."""
    if target.engine != AUTO_ENGINE:
        return evaluate(target.engine, onnx_model, feed, options=target.options, measure=True, **kwargs)
    model = read_model(onnx_model)
    results = [
        evaluate(name, model, feed, options=target.options, measure=True, **kwargs)
        for name in candidate_engines(target.options)
    ]
    for result in results:
        log.info("target %s (auto): %s %s", target.name, result.verdict, _batch1_ms(result))
    return fastest_deployable(results)


def fastest_deployable(results: list[EngineResult]) -> EngineResult:
    """An `auto` target's choice among measured engines: the fastest deployable one at the
    smallest batch measured; when none is deployable, the reference engine's result (or the
    first), whose verdict says why."""
    deployable = [r for r in results if r.verdict.deployable and r.measurement is not None]
    if deployable:
        return min(deployable, key=_batch1_ms)
    return next((r for r in results if r.verdict.engine == REFERENCE), results[0])


def _batch1_ms(result: EngineResult) -> float:
    """p50 latency at the smallest batch measured (inf when not measured)."""
    if result.measurement is None or not result.measurement.latency:
        return float("inf")
    return result.measurement.latency[min(result.measurement.latency)].p50_ms


def target_metrics(target: DeploymentTarget, result: EngineResult) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, tags) recording a version's deployment on a target: latency, size, parity.

    Metrics are meant for MLflow 3 model metrics (`mlflow.log_metrics(..., model_id=...)`);
    the tags name the engine, target and verdict (text has no place among metrics)."""
    verdict = result.verdict
    metrics: dict[str, float] = {"deploy_parity_ok": 1.0 if verdict.deployable else 0.0}
    if verdict.max_abs_diff is not None:
        metrics["deploy_parity_max_abs_diff"] = verdict.max_abs_diff
    if result.measurement is not None:
        metrics.update(result.measurement.as_metrics("deploy_"))
    tags = {DEPLOY_ENGINE_TAG: verdict.engine, DEPLOY_TARGET_TAG: target.name, DEPLOY_VERDICT_TAG: str(verdict)[:4900]}
    return metrics, tags
