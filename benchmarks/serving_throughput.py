"""Serving throughput and latency: loopml's BentoML service against a bare FastAPI + ONNX
Runtime server of the same model, in the same run, on this machine; a BentoML service
that does no work shows what the framework alone costs.

For concurrency 1, 8 and 32 connections (wrk, closed loop: each connection sends its next
request when the last one answered), every server gets single-row requests for the same
duration. Printed:
requests/s, p50 and p99 latency, the throughput ratio loopml/bare, and the p99 overhead
over the model's own compute (ONNX Runtime single-row median, measured in-process).
The client shares the 2 cores with the servers, so ratios are the figures to compare.

    python benchmarks/serving_throughput.py [--seconds 8] [--workspace DIR]     (needs wrk: apt-get install -y wrk)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from automl_tasks.core.settings import Workspace  # noqa: E402
from automl_tasks.deploy.onnx_model import OnnxModel  # noqa: E402
from automl_tasks.estimators.features import feature_frame  # noqa: E402
from automl_tasks.families.artifacts import feature_schema_of  # noqa: E402
from automl_tasks.families.loading import resolve_version  # noqa: E402
from loopml.embedded import free_port  # noqa: E402
from loopml.processes import stop_tree  # noqa: E402
from loopml.serve import start_server  # noqa: E402
from serving.loader import sample_instances  # noqa: E402
from tests.family_builder import add_version  # noqa: E402

FAMILY = "bench"


def _wrk(url: str, body: dict, concurrency: int, seconds: int) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx count) from wrk, a C load generator (one thread)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [[{json.dumps(body)}]]\n"
        )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", script.name, f"{url}/predict"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, ms("50%"), ms("99%"), int(errors.group(1)) if errors else 0


def _start_bare(ws: Workspace, port: int) -> subprocess.Popen:
    import mlflow

    version = resolve_version(ws, FAMILY, "champion")
    onnx = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="onnx/model.onnx")
    schema = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="feature_schema.json")
    return start_uvicorn(
        "benchmarks.bare_onnx_server:app", port, {"LOOPML_BARE_ONNX": onnx, "LOOPML_BARE_SCHEMA": schema}
    )


def start_uvicorn(app: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    """`uvicorn APP` on loopback (with `env` added), returned once its /readyz answers."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=dict(os.environ, PYTHONPATH=str(REPO), **env),
        cwd=REPO,
        start_new_session=True,
    )
    for _ in range(240):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False, timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    stop_tree(process.pid)
    raise RuntimeError(f"{app} did not start")


def _model_compute_ms(ws: Workspace, instances: list[dict]) -> float:
    import mlflow
    import pandas as pd

    version = resolve_version(ws, FAMILY, "champion")
    schema = feature_schema_of(version.run_id)
    model = OnnxModel(
        mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="onnx/model.onnx"), schema
    )
    frame = feature_frame(pd.DataFrame(instances[:1]), schema)
    times = []
    for _ in range(300):
        started = time.perf_counter()
        model.run(frame)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8, help="load duration per server and concurrency")
    parser.add_argument("--workspace", help="reuse a workspace that already has the family 'bench'")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("this benchmark needs wrk (Debian: apt-get install -y wrk); `make bench` installs it")
    with tempfile.TemporaryDirectory() as home:
        ws = bench_workspace(args.workspace or home, built=bool(args.workspace))
        instances = sample_instances(ws, FAMILY, 50)
        compute_ms = _model_compute_ms(ws, instances)
        body = {"instances": instances[:1]}
        candidates = {
            "loopml": lambda: start_server(ws, FAMILY, free_port(13500)),
            "loopml, no inference log": lambda: start_server(
                ws, FAMILY, free_port(13600), extra_env={"LOOPML_INFERENCE_LOG": "0"}
            ),
            "bare FastAPI+ORT": lambda: _BareServer(ws, free_port(13700)),
            "BentoML floor, defaults": lambda: _floor_server(free_port(13800)),
            "BentoML floor, tuned": lambda: _floor_server(free_port(13900), tuned=True),
        }
        print(f"model compute (ONNX Runtime, 1 row, in-process median): {compute_ms:.3f} ms")
        print(f"{'server':<28} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        results = load_each(candidates, body, args.seconds)
        print()
        for concurrency in (1, 8, 32):
            ours, bare_r = results[("loopml", concurrency)], results[("bare FastAPI+ORT", concurrency)]
            print(
                f"concurrency {concurrency:>2}: throughput loopml/bare = {ours[0] / bare_r[0]:.2f}x; "
                f"p99 loopml {ours[2]:.2f} ms = model compute + {ours[2] - compute_ms:.2f} ms "
                f"(bare: + {bare_r[2] - compute_ms:.2f} ms)"
            )
        floor = results[("BentoML floor, tuned", 1)][2]
        ours = results[("loopml", 1)][2]
        print(
            f"p99 at concurrency 1: loopml {ours:.2f} ms, tuned floor {floor:.2f} ms (+{ours - floor:.2f} ms), "
            f"floor with defaults {results[('BentoML floor, defaults', 1)][2]:.2f} ms"
        )
        print(json.dumps({f"{k[0]}@{k[1]}": v for k, v in results.items()}))


def load_each(servers: dict, body: dict, seconds: int, width: int = 28) -> dict[tuple[str, int], tuple]:
    """wrk on each server (started one at a time: idle ones would share the cores) at
    concurrency 1, 8 and 32; {(name, concurrency): (req/s, p50 ms, p99 ms)}, printed as it goes."""
    results = {}
    for name, start in servers.items():
        server = start()
        try:
            server.wait_ready()
            for concurrency in (1, 8, 32):
                rps, p50, p99, errors = _wrk(server.url, body, concurrency, seconds)
                results[(name, concurrency)] = (rps, p50, p99)
                print(f"{name:<{width}} {concurrency:>4} {rps:>8.1f} {p50:>8.2f} {p99:>8.2f} {errors:>8}", flush=True)
        finally:
            server.stop()
    return results


def bench_workspace(home: str, *, built: bool) -> Workspace:
    """The workspace at `home`; unless it was `built` already, with a 2-trial version of FAMILY."""
    ws = Workspace.at(home).ensure()
    if not built:
        add_version(ws, FAMILY, n_trials=2, tag="bench")
    return ws


class BentoServe:
    """`bentoml serve SERVICE` on loopback in its own process group, with the interface the
    benchmark loops use (`url`, `wait_ready`, `stop`); `env` is added to this environment."""

    def __init__(self, service: str, port: int, env: dict[str, str] | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.service = service
        environ = dict(os.environ, BENTOML_DO_NOT_TRACK="True", PYTHONPATH=str(REPO), **(env or {}))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", service, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=environ,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self) -> None:
        for _ in range(240):
            try:
                if httpx.get(f"{self.url}/readyz", trust_env=False, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"BentoML service {self.service} did not start")

    def stop(self) -> None:
        stop_tree(self.process.pid)


def _floor_server(port: int, tuned: bool = False) -> BentoServe:
    """A BentoML service that does nothing: what the framework alone costs."""
    return BentoServe("benchmarks.bentoml_floor_service:FloorService", port, {"LOOPML_FLOOR_TUNED": str(int(tuned))})


class UvicornServer:
    """A bare FastAPI server (`app`, with `env`), with the BentoServer interface the loop uses."""

    def __init__(self, app: str, port: int, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = start_uvicorn(app, port, env)

    def wait_ready(self) -> None:  # start_uvicorn returns once /readyz answers
        return None

    def stop(self) -> None:
        stop_tree(self.process.pid)


class _BareServer(UvicornServer):
    """The bare FastAPI + ONNX Runtime server of the family's champion."""

    def __init__(self, ws: Workspace, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = _start_bare(ws, port)


if __name__ == "__main__":
    main()
