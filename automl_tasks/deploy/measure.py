"""Latency, size and memory of a deployed model: measured the same way everywhere.

The smoke test, registration (`deploy.runtime`), the engine contract check and the
benchmarks all time through `latency_stats`: a warm-up first (first calls pay for lazy
initialisation, JIT and, for TVM, a build per new shape), then `repeats` timed calls;
p50 and p99 in milliseconds. Batches are the fixed feed's rows tiled to the batch size
(1 and 32 by default), so every engine sees the same numbers.

Peak memory is the process's resident-set high-water mark during the measured block
minus its resident set before it (Linux: the mark is reset through
`/proc/self/clear_refs`, so earlier peaks do not count); where that reset is not
possible it falls back to `ru_maxrss` and says so in `peak_memory_source`.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BATCH_SIZES = (1, 32)
WARMUP = 10
REPEATS = 100


@dataclass(frozen=True)
class LatencyStats:
    batch: int
    p50_ms: float
    p99_ms: float
    repeats: int


def time_calls(call: Callable[[], Any], *, warmup: int = WARMUP, repeats: int = REPEATS) -> np.ndarray:
    """Seconds of `repeats` calls of `call`, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = np.empty(repeats)
    for i in range(repeats):
        started = time.perf_counter()
        call()
        times[i] = time.perf_counter() - started
    return times


def latency_stats(call: Callable[[], Any], batch: int, *, warmup: int = WARMUP, repeats: int = REPEATS) -> LatencyStats:
    times = time_calls(call, warmup=warmup, repeats=repeats) * 1000
    return LatencyStats(batch, float(np.percentile(times, 50)), float(np.percentile(times, 99)), repeats)


def batch_feed(feed: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """The feed's rows (dimension 0) repeated or cut to exactly `rows`."""
    out = {}
    for name, value in feed.items():
        value = np.asarray(value)
        reps = -(-rows // value.shape[0])
        out[name] = np.ascontiguousarray(np.concatenate([value] * reps)[:rows])
    return out


def _rss_kb() -> tuple[int, int]:
    fields_ = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields_[key] = int(value.split()[0])
    return fields_["VmRSS"], fields_["VmHWM"]


class PeakMemory:
    """`with PeakMemory() as peak: ...` then `peak.mb` (high-water mark over the start)."""

    def __enter__(self) -> PeakMemory:
        self.source = "VmHWM"
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.start_kb = _rss_kb()[0]
        except OSError:
            self.source = "ru_maxrss (process lifetime peak)"
            self.start_kb = 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.source == "VmHWM":
            self.mb = max(0, _rss_kb()[1] - self.start_kb) / 1024
        else:
            self.mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Measurement:
    """p50/p99 latency per batch size, model size, peak memory of one engine on one model."""

    latency: dict[int, LatencyStats] = field(default_factory=dict)
    model_size_bytes: int = 0
    compiled_size_bytes: int | None = None
    peak_memory_mb: float | None = None
    peak_memory_source: str = ""

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat numbers for MLflow: latency_p50_ms_b1, latency_p99_ms_b32, model_size_kb, ..."""
        metrics: dict[str, float] = {}
        for batch, stats in sorted(self.latency.items()):
            metrics[f"{prefix}latency_p50_ms_b{batch}"] = stats.p50_ms
            metrics[f"{prefix}latency_p99_ms_b{batch}"] = stats.p99_ms
        metrics[f"{prefix}model_size_kb"] = self.model_size_bytes / 1024
        if self.compiled_size_bytes is not None:
            metrics[f"{prefix}compiled_size_kb"] = self.compiled_size_bytes / 1024
        if self.peak_memory_mb is not None:
            metrics[f"{prefix}peak_memory_mb"] = self.peak_memory_mb
        return metrics


def measure_runner(
    run: Callable[[Mapping[str, np.ndarray]], Any],
    feed: Mapping[str, np.ndarray],
    *,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
) -> dict[int, LatencyStats]:
    """p50/p99 of `run(feed tiled to b rows)` for each batch size b."""
    stats = {}
    for batch in batch_sizes:
        batched = batch_feed(feed, batch)
        stats[batch] = latency_stats(lambda batched=batched: run(batched), batch, warmup=warmup, repeats=repeats)
    return stats
