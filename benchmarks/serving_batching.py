"""BentoML's `batchable=True` against loopml's AdaptiveBatcher (benchmarks/bentoml_batching_service.py),
same model and code otherwise; wrk at 1, 8 and 32 connections, single-row requests.

    python benchmarks/serving_batching.py [--seconds 6]     (needs wrk)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from automl_tasks.core.settings import Workspace  # noqa: E402
from benchmarks.serving_throughput import FAMILY, BentoServe, _wrk, bench_workspace  # noqa: E402
from loopml.embedded import free_port  # noqa: E402
from serving.loader import sample_instances  # noqa: E402


def _batching_server(ws: Workspace, port: int, batching: str) -> BentoServe:
    env = {**ws.env(), "LOOPML_FAMILY": FAMILY, "LOOPML_BATCHING": batching}
    return BentoServe("benchmarks.bentoml_batching_service:BatchingService", port, env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--workspace", help="reuse a workspace that already has the family 'bench'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        ws = bench_workspace(args.workspace or home, built=bool(args.workspace))
        body = {"instances": sample_instances(ws, FAMILY, 1)}
        print(f"{'batcher':<22} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        for batching in ("adaptive", "bentoml"):
            server = _batching_server(ws, free_port(14100), batching)
            try:
                server.wait_ready()
                for concurrency in (1, 8, 32):
                    rps, p50, p99, errors = _wrk(server.url, body, concurrency, args.seconds)
                    print(f"{batching:<22} {concurrency:>4} {rps:>8.1f} {p50:>8.2f} {p99:>8.2f} {errors:>8}")
            finally:
                server.stop()


if __name__ == "__main__":
    main()
