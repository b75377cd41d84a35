"""The deployment-engine seam: a backend compiles an ONNX model into a runner.

Small on purpose, like Optuna's samplers: a backend has a `name`, says why it cannot run
here (`unavailable_reason`, None when it can), and `compile`s an ONNX model (a path or
its bytes) for an example feed into a `Runner` whose `run(feed)` returns the model's
outputs in the ONNX graph's output order. Everything else (parity against a reference,
latency, size, memory) is done once, outside the backends, by
`automl_tasks.deploy.backends.verdict` and `automl_tasks.deploy.measure`.

A runner accepts any batch size the ONNX model accepts (dimension 0 of every input);
engines that compile for static shapes (TVM) pad a batch to the next power of two and
build each such shape on first sight and keep it, so that cost lands in the
measurement's warm-up, not in its timings, and a server builds a few shapes only.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from automl_tasks.core.errors import BackendUnavailableError, ConfigurationError

Feed = Mapping[str, np.ndarray]
OnnxSource = str | Path | bytes

FP32, FP16 = "fp32", "fp16"


@dataclass(frozen=True)
class BackendOptions:
    """How to build: the same fields for every engine; an engine ignores what it has no use for.

    threads       intra-op threads (None: the engine's default, usually all cores)
    precision     "fp32" or "fp16" (an engine refuses a precision it does not offer)
    work_dir      where an engine keeps what a later compile reuses (TVM tuning logs,
                  TensorRT engine cache); None: a temporary folder, nothing reused
    tune_seconds  TVM: time budget for MetaSchedule tuning; 0 builds untuned
    """

    threads: int | None = None
    precision: str = FP32
    work_dir: Path | None = None
    tune_seconds: float = 0.0

    @classmethod
    def coerce(cls, options: BackendOptions | Mapping[str, Any] | None) -> BackendOptions:
        """Options from a mapping (a target's YAML block), with a clear error for unknown keys."""
        if options is None:
            return cls()
        if isinstance(options, BackendOptions):
            return options
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(f"unknown engine option(s) {unknown}; known: {sorted(known)}")
        values = dict(options)
        if values.get("work_dir") is not None:
            values["work_dir"] = Path(values["work_dir"])
        built = cls(**values)
        if built.threads is not None and built.threads < 1:
            raise ConfigurationError(f"engine option threads must be >= 1, got {built.threads}")
        if built.tune_seconds < 0:
            raise ConfigurationError(f"engine option tune_seconds must be >= 0, got {built.tune_seconds}")
        return built


class Runner(abc.ABC):
    """A compiled model: `run(feed)` -> outputs in the ONNX graph's output order."""

    #: bytes of what the engine built, when it builds something separate from the ONNX file
    compiled_size_bytes: int | None = None

    @abc.abstractmethod
    def run(self, feed: Feed) -> list[np.ndarray]:
        """Outputs for one feed (every input named, dimension 0 the batch)."""


class DeploymentBackend(abc.ABC):
    """One deployment engine. Subclasses set `name`, `tolerances` and implement `_compile`."""

    name: ClassVar[str]
    #: largest allowed |output - reference|, per precision, relative to the reference's
    #: scale: the check is `max |out - ref| <= tol * max(1, max |ref|)` per output.
    tolerances: ClassVar[Mapping[str, float]] = {FP32: 1e-4}

    def unavailable_reason(self) -> str | None:
        """None when this engine can run on this machine, otherwise a sentence saying why not."""
        return None

    def tolerance(self, precision: str) -> float:
        try:
            return self.tolerances[precision]
        except KeyError:
            raise ConfigurationError(
                f"engine {self.name!r} does not offer precision {precision!r}; it offers {sorted(self.tolerances)}"
            ) from None

    def compile(
        self, onnx_model: OnnxSource, example_feed: Feed, options: BackendOptions | Mapping[str, Any] | None = None
    ) -> Runner:
        """Build `onnx_model` for this engine; `example_feed` fixes the input names, dtypes and shapes.

        Raises `BackendUnavailableError` (with the reason) when the engine cannot run here,
        `ConfigurationError` for options it refuses; the engine's own errors pass through."""
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailableError(f"deployment engine {self.name!r} is unavailable: {reason}")
        opts = BackendOptions.coerce(options)
        self.tolerance(opts.precision)  # refuses an unknown precision before any work
        return self._build(read_model(onnx_model), {k: np.asarray(v) for k, v in example_feed.items()}, opts)

    def _build(self, model: bytes, example_feed: dict[str, np.ndarray], options: BackendOptions) -> Runner:
        """The build `compile` runs after its checks; an engine that must rewrite the model
        first overrides it (`lowering.StandardOpsBackend`)."""
        return self._compile(model, example_feed, options)

    @abc.abstractmethod
    def _compile(self, model: bytes, example_feed: dict[str, np.ndarray], options: BackendOptions) -> Runner:
        """Engine-specific build; called only when the engine is available."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def read_model(onnx_model: OnnxSource) -> bytes:
    """The serialized ONNX model, from a path or from bytes."""
    if isinstance(onnx_model, bytes | bytearray):
        return bytes(onnx_model)
    path = Path(onnx_model)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {str(path)!r} does not exist")
    return path.read_bytes()
