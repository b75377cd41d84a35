"""Why a BentoML service that does nothing has a p99 of 50-250 ms on this machine:
full (generation 2) garbage collections over the worker's ~150k+ tracked objects.

Runs benchmarks/bentoml_gc_probe_service.py with Python's defaults, with `gc.freeze()`
in the service's __init__, with it again at the first request, and with a higher generation-2 threshold on top; wrk, 1 connection; prints p50/p99 and the collections
that happened while serving (count and longest, per generation).

    python benchmarks/bentoml_gc_stalls.py [--seconds 8]     (needs wrk)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.serving_throughput import BentoServe, _wrk  # noqa: E402
from loopml.embedded import free_port  # noqa: E402


def _probe_server(port: int, freeze: str, threshold2: str = "") -> BentoServe:
    env = {"LOOPML_GC_FREEZE": freeze, "LOOPML_GC_THRESHOLD2": threshold2}
    return BentoServe("benchmarks.bentoml_gc_probe_service:GcProbe", port, env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    body = {"instances": [{"x": 1.0}]}
    variants = {
        ("", ""): "Python defaults",
        ("init", ""): "gc.freeze() in __init__",
        ("first", ""): "gc.freeze() + at 1st request",
        ("first", "1000"): "... + gen-2 threshold 1000",
    }
    for (freeze, threshold2), label in variants.items():
        server = _probe_server(free_port(14200), freeze, threshold2)
        try:
            server.wait_ready()
            rps, p50, p99, _ = _wrk(server.url, body, 1, args.seconds)
            stats = httpx.post(f"{server.url}/gcstats", json={}, trust_env=False, timeout=10).json()
        finally:
            server.stop()
        print(f"{label:<30} req/s {rps:7.1f}  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  {json.dumps(stats)}")


if __name__ == "__main__":
    main()
