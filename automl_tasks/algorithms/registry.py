"""The algorithm registry: built-in and contributed algorithms with their capability reports.

An algorithm is a folder with an `algorithm.yaml` (and its code), or an installed package
exposing one through the `loopml.algorithms` entry point (the entry point names the
folder). Registering runs the smoke test; the report is kept in the workspace
(`algorithms/registry.json`) and as an MLflow run of the `loopml-algorithms` experiment,
and decides what the algorithm may be used for.
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from automl_tasks.algorithms.smoke import CapabilityReport, smoke_test
from automl_tasks.algorithms.spec import AlgorithmSpec, load_spec
from automl_tasks.core.errors import ConfigurationError, UserError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import ALGORITHM_TAG, ALGORITHMS_ENTRY_POINT_GROUP, KIND_TAG, SOURCE_TAG

log = logging.getLogger(__name__)

BUILTIN = Path(__file__).parent / "builtin"
EXPERIMENT = "loopml-algorithms"


def builtin_specs() -> dict[str, AlgorithmSpec]:
    """The algorithms shipped with loopml, by name."""
    specs = [load_spec(folder) for folder in sorted(BUILTIN.iterdir()) if (folder / "algorithm.yaml").exists()]
    return {spec.name: spec for spec in specs}


def installed_specs() -> dict[str, AlgorithmSpec]:
    """Algorithms of installed packages (entry point group `loopml.algorithms` -> a folder path)."""
    found = {}
    for point in entry_points(group=ALGORITHMS_ENTRY_POINT_GROUP):
        try:
            folder = Path(point.load()())  # a callable returning the folder
            spec = load_spec(folder)
            found[spec.name] = spec
        except Exception as exc:  # one broken package must not hide the others
            log.error("algorithm entry point %s is unusable: %s", point.name, exc)
    return found


def _store(ws: Workspace) -> Path:
    return ws.home / "algorithms" / "registry.json"


def _read(ws: Workspace) -> dict[str, Any]:
    path = _store(ws)
    return json.loads(path.read_text()) if path.exists() else {}


def resolve(ws: Workspace | None, name_or_path: str) -> AlgorithmSpec:
    """A spec by registered or built-in name, or from a folder / algorithm.yaml path."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return load_spec(path.resolve())
    known = {**builtin_specs(), **installed_specs()}
    if ws is not None:
        known |= {name: load_spec(Path(entry["source"])) for name, entry in _read(ws).items()}
    if name_or_path not in known:
        raise ConfigurationError(f"unknown algorithm {name_or_path!r}; known: {sorted(known)} (or give a folder)")
    return known[name_or_path]


def register(ws: Workspace, name_or_path: str) -> CapabilityReport:
    """Smoke-test an algorithm and record its capability report (workspace + MLflow)."""
    spec = resolve(ws, name_or_path)
    log.info("registering algorithm %s %s from %s", spec.name, spec.version, spec.source)
    report = smoke_test(spec, ws.runs / "algorithms" / spec.name / spec.version)
    registry = _read(ws)
    registry[spec.name] = {"source": spec.source, "estimator": spec.estimator, "report": report.to_dict()}
    path = _store(ws)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(registry, indent=2))
    tmp.replace(path)
    _log_to_mlflow(ws, spec, report)
    log.info("%s", report.summary())
    return report


def report_of(ws: Workspace, name: str) -> CapabilityReport | None:
    entry = _read(ws).get(name)
    return CapabilityReport.from_dict(entry["report"]) if entry else None


def registered(ws: Workspace) -> dict[str, CapabilityReport]:
    return {name: CapabilityReport.from_dict(entry["report"]) for name, entry in _read(ws).items()}


def estimator_reference(ws: Workspace | None, algorithm: str) -> str:
    """The `package.module:Class` reference of `algorithm`: a built-in, installed or registered
    name, a folder with algorithm.yaml, or already a reference (returned as it is).

    A search plan holds this reference, never a name, so the workers, the job estimator and
    registration need no registry lookup."""
    if ":" in algorithm and not Path(algorithm).expanduser().exists():
        return algorithm
    return resolve(ws, algorithm).estimator


def require(ws: Workspace, algorithm: str, capability: str) -> None:
    """Refuse to use `algorithm` (a name or an estimator reference) for something its smoke
    test did not show it can do.

    A built-in algorithm whose algorithm.yaml says `needs_registration: false` is checked by
    loopml's own test suite, not per workspace."""
    shipped = {**builtin_specs(), **installed_specs()}
    spec = shipped.get(algorithm) or next((s for s in shipped.values() if s.estimator == algorithm), None)
    if spec is not None and Path(spec.source).is_relative_to(BUILTIN) and not spec.needs_registration:
        return
    by_reference = (n for n, entry in _read(ws).items() if entry.get("estimator") == algorithm)
    name = spec.name if spec else next(by_reference, algorithm)
    report = report_of(ws, name)
    if report is None:
        raise UserError(f"algorithm {name!r} is not registered; run `loopml algorithms register {name}` first")
    if not report.has(capability):
        failed = next(c for c in report.capabilities if c.name == capability)
        raise UserError(f"algorithm {name!r} is not {capability} ({failed.detail}); it can only be searched")


def _log_to_mlflow(ws: Workspace, spec: AlgorithmSpec, report: CapabilityReport) -> None:
    from automl_tasks.core.tracking import ensure_experiment, mlflow_client

    client = mlflow_client(ws)
    run = client.create_run(
        ensure_experiment(ws, EXPERIMENT),
        run_name=f"{spec.name} {spec.version}",
        tags={KIND_TAG: "algorithm_registration", ALGORITHM_TAG: spec.name, SOURCE_TAG: spec.source},
    )
    for capability in report.capabilities:
        client.log_metric(run.info.run_id, capability.name, float(capability.ok))
        client.set_tag(run.info.run_id, f"capability.{capability.name}", capability.detail[:4900])
    client.log_dict(run.info.run_id, report.to_dict(), "capability_report.json")
    client.set_terminated(run.info.run_id)
