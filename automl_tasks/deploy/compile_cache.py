"""Compile once per model: a target's verdict and latency, cached by the ONNX model's hash.

A search meets the same model more than once (the default configuration enqueued again by
a warm start, grid points that fit to the same trees, a retried trial), and compiling and
measuring on a deployment engine costs far more than the lookup. The key is the sha256 of
the ONNX model (its graph's random name left out) plus the engine and its options (and the
measurement settings), so a different engine or thread count is a different entry.

Two layers:
- in the process: the `EngineResult` itself (its runner stays compiled; the last
  `MAX_RUNNERS` of them, so a long search does not hold every model it tried), and
- on disk (`cache_dir/<key>.json`, when a folder is given): the verdict and the measured
  latency, so another worker process of the same search reuses them without compiling.

Only a completed compile is cached: an engine that is unavailable says so again each time
(nothing is built), and a crash is not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from automl_tasks.deploy.backends.base import Feed, OnnxSource, read_model
from automl_tasks.deploy.backends.verdict import UNAVAILABLE, EngineResult
from automl_tasks.deploy.targets import DeploymentTarget, evaluate_on_target

log = logging.getLogger(__name__)

#: per-trial measurement: batch 1 only, a short warm-up (the search compares models; the
#: registered champion is measured fully, batch 1 and 32, at registration)
TRIAL_BATCH_SIZES = (1,)
TRIAL_WARMUP = 5
TRIAL_REPEATS = 30
#: compiled runners kept in memory per cache (older ones are dropped; their records stay)
MAX_RUNNERS = 8


@dataclass(frozen=True)
class TargetRecord:
    """What the search keeps of one compile on a target: the verdict and batch-1 latency."""

    key: str
    target: str
    engine: str
    status: str  # a verdict status: ok, parity failed, failed, unavailable
    verdict: str  # the verdict in words (with the max abs diff or the error)
    deployable: bool
    latency_ms: float | None  # p50 at batch 1; None when it did not compile or failed parity
    compile_seconds: float | None
    cached: bool = False  # read from the cache rather than compiled now

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def model_digest(onnx_bytes: bytes) -> str:
    """sha256 of the model as an engine sees it: the graph's name left out.

    skl2onnx names every exported graph with a fresh UUID, so two exports of the same fitted
    pipeline differ in that name alone; it changes nothing an engine compiles."""
    import onnx

    try:
        model = onnx.load_from_string(onnx_bytes)
    except Exception:  # not parseable here: the raw bytes are the identity (the engine will say what is wrong)
        return hashlib.sha256(onnx_bytes).hexdigest()
    model.graph.name = ""
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


def cache_key(onnx_bytes: bytes, target: DeploymentTarget, **settings: Any) -> str:
    """sha256 over the model (`model_digest`), the engine, its options and the measurement settings."""
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(target.options).items()}
    meta = json.dumps({"engine": target.engine, "options": options, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(f"{model_digest(onnx_bytes)}\0{meta}".encode()).hexdigest()


class CompileCache:
    """Compile-and-measure results by key, in memory and optionally in `cache_dir`."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[str, tuple[TargetRecord, EngineResult | None]] = {}
        self._lock = threading.Lock()
        self.hits = self.compiles = 0

    def _path(self, key: str) -> Path | None:
        return self.cache_dir / f"{key}.json" if self.cache_dir is not None else None

    def lookup(self, key: str) -> TargetRecord | None:
        with self._lock:
            if key in self._memory:
                return self._memory[key][0]
        path = self._path(key)
        if path is not None and path.is_file():
            try:
                return TargetRecord(**json.loads(path.read_text()))
            except (ValueError, TypeError) as exc:  # a torn or old file is a miss, not an error
                log.warning("compile cache entry %s unreadable (%s); compiling again", path, exc)
        return None

    def store(self, record: TargetRecord, result: EngineResult | None) -> None:
        with self._lock:
            self._memory[record.key] = (record, result)
            holding = [key for key, (_, kept) in self._memory.items() if kept is not None]
            for key in holding[: max(0, len(holding) - MAX_RUNNERS)]:  # dicts keep insertion order
                self._memory[key] = (self._memory[key][0], None)
        path = self._path(record.key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{threading.get_ident()}.tmp")
            partial.write_text(record.to_json())
            partial.replace(path)  # atomic: a concurrent reader sees the whole file or none

    def runner(self, key: str) -> Any:
        """The compiled runner of `key` when it was compiled in this process (else None)."""
        with self._lock:
            entry = self._memory.get(key)
        return entry[1].runner if entry and entry[1] is not None else None

    def evaluate(self, target: DeploymentTarget, onnx_model: OnnxSource, feed: Feed) -> TargetRecord:
        """The target's verdict and batch-1 latency on `onnx_model`, compiling only on a miss."""
        model = read_model(onnx_model)
        settings = {"batch_sizes": TRIAL_BATCH_SIZES, "warmup": TRIAL_WARMUP, "repeats": TRIAL_REPEATS}
        key = cache_key(model, target, **settings)
        found = self.lookup(key)
        if found is not None:
            self.hits += 1
            log.info("compile cache hit on %s (%s): %s", target.name, key[:12], found.verdict)
            return TargetRecord(**{**asdict(found), "cached": True})
        result = evaluate_on_target(
            target, model, feed, batch_sizes=TRIAL_BATCH_SIZES, warmup=TRIAL_WARMUP, repeats=TRIAL_REPEATS
        )
        verdict = result.verdict
        latency = None
        if result.measurement is not None and 1 in result.measurement.latency:
            latency = result.measurement.latency[1].p50_ms
        record = TargetRecord(
            key,
            target.name,
            verdict.engine,
            verdict.status,
            str(verdict),
            verdict.deployable,
            latency,
            result.compile_seconds,
        )
        if verdict.status != UNAVAILABLE:
            self.compiles += 1
            self.store(record, result)
        return record


_SHARED: dict[str, CompileCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_cache(cache_dir: Path) -> CompileCache:
    """One cache per folder in a process (the worker threads of one search share it)."""
    with _SHARED_LOCK:
        return _SHARED.setdefault(str(cache_dir), CompileCache(cache_dir))
