"""Minimal reproduction of BentoML's p99 stalls: a do-nothing service that times Python's
garbage collections (`gc.callbacks`) and reports them on POST /gcstats.

`LOOPML_GC_FREEZE=init` calls `gc.freeze()` when the service is initialised,
`LOOPML_GC_FREEZE=first` at its first request, once BentoML has built its app (the
workaround loopml's service applies: both); `LOOPML_GC_THRESHOLD2=N` also sets the
generation-2 threshold (10 by default: a full collection every 10 generation-1 ones). Driven by benchmarks/bentoml_gc_stalls.py.
"""

from __future__ import annotations

import collections
import gc
import os
import time
from typing import Any

import bentoml

_COLLECTIONS: list[tuple[int, float]] = []
_started = [0.0]


def _time_collections(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _COLLECTIONS.append((info["generation"], (time.perf_counter() - _started[0]) * 1000))


gc.callbacks.append(_time_collections)


@bentoml.service(name="gc_probe", logging={"access": {"enabled": False}})
class GcProbe:
    def __init__(self) -> None:
        self.freeze_at_first = os.environ.get("LOOPML_GC_FREEZE") == "first"
        if os.environ.get("LOOPML_GC_FREEZE") in ("init", "first"):
            gc.collect()
            gc.freeze()
        if os.environ.get("LOOPML_GC_THRESHOLD2"):
            first, second, _ = gc.get_threshold()
            gc.set_threshold(first, second, int(os.environ["LOOPML_GC_THRESHOLD2"]))
        _COLLECTIONS.clear()  # report what happens while serving only

    @bentoml.api(route="/predict")
    async def predict(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
        if self.freeze_at_first:
            self.freeze_at_first = False
            gc.freeze()
        return {"predictions": [0] * len(instances)}

    @bentoml.api(route="/gcstats")
    async def gcstats(self) -> dict[str, Any]:
        by_generation = collections.defaultdict(list)
        for generation, ms in _COLLECTIONS:
            by_generation[generation].append(ms)
        return {
            "tracked_objects": len(gc.get_objects()),
            "collections": {
                str(g): {"count": len(v), "max_ms": round(max(v), 2), "total_ms": round(sum(v), 1)}
                for g, v in sorted(by_generation.items())
            },
        }
