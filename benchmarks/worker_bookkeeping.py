"""What a search worker spends on each trial beside the trial itself (issue #16's 10 ms goal).

One real `run_worker` in this process evaluates zero-length trials (the sleepy test
estimator with 0 s), so every CPU second it uses is bookkeeping: reserving and sampling the
trial, budget and stop checks, the heartbeat, marking the trial with its worker, telling
Optuna, the progress line. Beside it, on the same stores and in the same run:

- plain Optuna: `ask`, the same two suggestions, one heartbeat, `tell`, with the plan's
  sampler (what a user of Optuna's ask-and-tell interface would pay: the floor);
- the trials' MLflow child runs, which the job estimator writes from the study
  (`trial_runs.record_trials` over the same trials): CPU spent per trial, in another process
  in the pipelines, reported so that nothing moved out of the worker goes unmeasured;
- with `--stores distributed`, plain Optuna again through Optuna's `GrpcStorageProxy` to a
  proxy process (`run_grpc_proxy_server` over the same PostgreSQL, with Optuna's cache), and
  that process's CPU per trial: what the proxy would take off a worker, and what it costs.

`--stores embedded` (default): Optuna's storage in the workspace and MLflow in this process,
as the embedded mode runs; every database's CPU is this process's. `--stores distributed`:
Optuna's storage in PostgreSQL and MLflow's tracking server (PostgreSQL store) on loopback,
as the distributed mode runs; the servers' CPU is theirs, not counted here.

Both Optuna storages run side by side in one run: Optuna's journal (loopml's default: a file,
or a PostgreSQL table) and its RDB storage (SQLite, or PostgreSQL tables: what loopml used
before, and what a workspace made before the journal keeps).

    .venv/bin/python benchmarks/worker_bookkeeping.py [--trials 200] [--stores embedded|distributed] [--profile]

Prints CPU ms and wall ms per trial for each; `--profile` adds the worker's costliest functions.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from automl_tasks.core.settings import Workspace  # noqa: E402
from automl_tasks.core.store_urls import JOURNAL_PREFIX  # noqa: E402
from automl_tasks.data import bundled_frame  # noqa: E402
from automl_tasks.search import start_search  # noqa: E402
from automl_tasks.search.storage import create_study, open_storage  # noqa: E402
from automl_tasks.search.trial_runs import record_trials  # noqa: E402
from automl_tasks.search.worker import run_worker  # noqa: E402
from tests.unit.test_search_engine import sleepy_plan  # noqa: E402

SPACE = """
params:
  - {name: x, type: float, range: [0, 1]}
  - {name: sleep_s, type: float_cat, range: [0.0]}
"""


@contextlib.contextmanager
def stores(kind: str, root: Path) -> Iterator[Workspace]:
    """The workspace whose stores the worker uses: embedded (SQLite) or distributed."""
    ws = Workspace.at(root / "ws").ensure()
    if kind == "embedded":
        yield ws
        return
    from tests.loopback_cluster import mlflow_server, stop_server
    from tests.postgres_server import postgres_server

    with postgres_server() as server:
        optuna_url, mlflow_url = (
            server.create_database(name).replace("postgresql://", "postgresql+psycopg2://")
            for name in ("optuna", "mlflow")
        )
        process, port = mlflow_server(root, mlflow_url)
        try:
            yield dataclasses.replace(ws, optuna_uri=JOURNAL_PREFIX + optuna_url, mlflow_uri=f"http://127.0.0.1:{port}")
        finally:
            stop_server(process)


def per_trial(n: int, work: Callable[[], int]) -> tuple[float, float]:
    """(CPU ms, wall ms) per trial of `work`, which returns how many trials it ran."""
    cpu, wall = time.process_time(), time.perf_counter()
    done = work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / done * 1000, wall / done * 1000


def plain_optuna(ws: Workspace, plan, n: int) -> int:
    """Ask, suggest, beat once, tell: Optuna's own per-trial cost with the plan's sampler."""
    storage = open_storage(ws.optuna_uri, ws.search)
    study = create_study(ws.optuna_uri, dataclasses.replace(plan, study_name="plain-optuna"), ws.search)
    for _ in range(n):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.suggest_categorical("sleep_s", [0.0])
        storage.record_heartbeat(trial._trial_id)
        study.tell(trial, 0.5)
    return n


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_optuna_proxy(url: str, port: int) -> None:
    """Optuna's gRPC storage proxy over `url`, with the in-process cache its docs ask for."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.storages.run_grpc_proxy_server(optuna.storages.get_storage(url), host="127.0.0.1", port=port)


def optuna_through_proxy(ws: Workspace, plan, n: int) -> tuple[tuple[float, float], float]:
    """Plain Optuna's ask/suggest/tell through `GrpcStorageProxy` to a proxy process on the
    same PostgreSQL: ((CPU ms, wall ms) per trial here, the proxy's CPU ms per trial). No
    heartbeat: the proxy has none (a worker would beat on the database itself)."""
    import multiprocessing

    import optuna
    import psutil

    study = create_study(ws.optuna_uri, dataclasses.replace(plan, study_name="through-proxy"), ws.search)
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve_optuna_proxy, args=(ws.optuna_uri, port), daemon=True
    )
    server.start()
    try:
        proxy = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        proxy.wait_server_ready(timeout=60)
        through = optuna.load_study(study_name=study.study_name, storage=proxy, sampler=study.sampler)
        served = psutil.Process(server.pid)
        before = sum(served.cpu_times()[:2])

        def work() -> int:
            for _ in range(n):
                trial = through.ask()
                trial.suggest_float("x", 0, 1)
                trial.suggest_categorical("sleep_s", [0.0])
                through.tell(trial, 0.5)
            return n

        client = per_trial(n, work)
        return client, (sum(served.cpu_times()[:2]) - before) / n * 1000
    finally:
        server.terminate()
        server.join(10)


def child_runs(ws: Workspace, plan, n: int) -> int:
    """The job estimator's MLflow record of the worker's trials."""
    recorded = record_trials(ws, plan.study_name)
    assert recorded == n, f"{recorded} child runs written for {n} trials"
    return recorded


def rdb_url(ws: Workspace, kind: str) -> str:
    """Optuna's RDB storage where the journal is: SQLite in the workspace, or the same database."""
    if kind == "embedded":
        return f"sqlite:///{ws.home / 'optuna' / 'optuna.db'}"
    return ws.optuna_uri.removeprefix(JOURNAL_PREFIX)


def measure(ws: Workspace, n: int, profiler: cProfile.Profile | None) -> dict[str, tuple[float, float]]:
    """The worker, plain Optuna and the child runs on `ws`'s Optuna storage: (CPU ms, wall ms) each."""
    plan, space = sleepy_plan(
        ws, bundled_frame("breast_cancer"), space=SPACE, n_trials=n, name="bookkeeping", time_budget_s=3600
    )
    start_search(ws.optuna_uri, plan, space)
    if profiler:
        profiler.enable()
    worker = per_trial(n, lambda: run_worker(ws, plan.study_name, 0).evaluated)
    if profiler:
        profiler.disable()
    return {
        "worker": worker,
        "optuna": per_trial(n, lambda: plain_optuna(ws, plan, n)),
        "mlflow": per_trial(n, lambda: child_runs(ws, plan, n)),
        "plan": plan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--stores", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, stores(args.stores, Path(tmp)) as ws:
        profiler = cProfile.Profile() if args.profile else None
        journal = measure(ws, args.trials, profiler)
        rdb_ws = dataclasses.replace(ws, optuna_uri=rdb_url(ws, args.stores))
        rdb = measure(rdb_ws, args.trials, None)
        proxied = optuna_through_proxy(rdb_ws, rdb["plan"], args.trials) if args.stores == "distributed" else None
    print(f"{args.trials} zero-length trials, {args.stores} stores (CPU ms and wall ms per trial):")
    for name, result in (("journal storage (default)", journal), ("RDB storage", rdb)):
        print(f"  Optuna's {name}:")
        rows = [
            ("loopml worker (everything it does)", result["worker"]),
            ("plain Optuna ask/suggest/heartbeat/tell", result["optuna"]),
            ("MLflow child run (job estimator)", result["mlflow"]),
        ]
        for label, (cpu, wall) in rows:
            print(f"    {label:42s} {cpu:6.1f} CPU  {wall:6.1f} wall")
        print(f"    {'worker beyond plain Optuna':42s} {result['worker'][0] - result['optuna'][0]:6.1f} CPU")
    if proxied:
        print(
            f"  {'plain Optuna through GrpcStorageProxy (RDB)':44s} {proxied[0][0]:6.1f} CPU  {proxied[0][1]:6.1f} wall"
        )
        print(f"  {'the gRPC proxy process (its own CPU)':44s} {proxied[1]:6.1f} CPU")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print(out.getvalue())


if __name__ == "__main__":
    main()
