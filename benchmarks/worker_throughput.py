"""Trial throughput with N worker processes on a PostgreSQL Optuna storage (`--optuna`:
Optuna's journal in a table, the distributed default, or its RDB storage).

Sleep-bound trials (0.5 s each) with N = 1, 2, 4, 8, 16 workers (goal: throughput of N
workers >= 0.9 x N x one worker's) and CPU-bound trials (0.5 s of CPU each) up to the
core count. Every worker process imports what it needs, then all start at one signal (16
Python processes importing scikit-learn, Optuna and MLflow would otherwise share the 2
cores with the trials); throughput is completed trials per second from the N-th
completion (every worker past its first trial) to the last. The stores are the
distributed mode's: PostgreSQL for Optuna and MLflow's tracking server (PostgreSQL store),
started on loopback by the same harness as the tests; each worker is a real `run_worker`
process, and a job estimator process watches the search and writes every trial's MLflow
child run through that server, as in the pipelines.

    .venv/bin/python benchmarks/worker_throughput.py [--workers 1 2 4 8 16] [--trials-per-worker 16]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from optuna.trial import TrialState  # noqa: E402

from automl_tasks.core.settings import Workspace  # noqa: E402
from automl_tasks.core.store_urls import JOURNAL_PREFIX  # noqa: E402
from automl_tasks.data import bundled_frame  # noqa: E402
from automl_tasks.search import load_study, start_search  # noqa: E402
from tests.loopback_cluster import mlflow_server, stop_server  # noqa: E402
from tests.postgres_server import postgres_server  # noqa: E402
from tests.unit.test_search_engine import sleepy_plan  # noqa: E402
from tests.worker_processes import start_python, wait_until  # noqa: E402

#: a worker process that imports what a trial needs, says it is ready and waits for the signal
WORKER_AT_GATE = (
    "import pathlib, time; from automl_tasks.search import run_worker; "
    "from automl_tasks.core.settings import Workspace; import tests.sleepy_estimator, mlflow, optuna; "
    "pathlib.Path({ready!r}).touch(); "
    "[time.sleep(0.01) for _ in iter(lambda: pathlib.Path({go!r}).exists(), True)]; "
    "run_worker(Workspace.from_env(), {name!r}, {index})"
)

#: the search's job estimator process
JOB_ESTIMATOR = (
    "from automl_tasks.search import watch_search; from automl_tasks.core.settings import Workspace; "
    "watch_search(Workspace.from_env(), {name!r})"
)

SPACE = """
params:
  - {{name: x, type: float, range: [0, 1]}}
  - {{name: sleep_s, type: float_cat, range: [0.5]}}
  - {{name: busy, type: bool, range: [{busy}]}}
"""


def throughput(
    server, mlflow_uri: str, root: Path, n_workers: int, trials_per_worker: int, busy: bool, prefix: str
) -> float:
    name = f"{'cpu' if busy else 'sleep'}{n_workers}"
    ws = Workspace.at(root / name).ensure()
    url = server.create_database(f"optuna_{name}").replace("postgresql://", "postgresql+psycopg2://")
    ws = dataclasses.replace(ws, optuna_uri=prefix + url, mlflow_uri=mlflow_uri)
    space_yaml = SPACE.format(busy=str(busy).lower())
    plan, space = sleepy_plan(
        ws,
        bundled_frame("breast_cancer"),
        space=space_yaml,
        n_trials=n_workers * trials_per_worker,
        name=name,
        time_budget_s=1200,
    )
    start_search(ws.optuna_uri, plan, space)
    gate = root / f"{name}.go"
    workers = [
        start_python(
            WORKER_AT_GATE.format(ready=str(root / f"{name}.{i}.ready"), go=str(gate), name=name, index=i),
            ws,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(n_workers)
    ]
    wait_until(lambda: all((root / f"{name}.{i}.ready").exists() for i in range(n_workers)), 600, "workers ready")
    # the job estimator, as in the pipelines: budget, time-outs, the trials' MLflow child runs
    estimator = start_python(JOB_ESTIMATOR.format(name=name), ws, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gate.touch()
    for process in [*workers, estimator]:
        process.wait(timeout=1200)
    study, _ = load_study(ws.optuna_uri, name)
    ends = sorted(t.datetime_complete for t in study.get_trials(states=(TrialState.COMPLETE,)))
    # from the n-th completion on, every worker is past its first trial (connections, caches)
    return (len(ends) - n_workers) / (ends[-1] - ends[n_workers - 1]).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--trials-per-worker", type=int, default=16)
    parser.add_argument(
        "--optuna",
        choices=("journal", "rdb"),
        default="journal",
        help="Optuna's journal in a table (the distributed default) or its RDB storage",
    )
    args = parser.parse_args()
    prefix = JOURNAL_PREFIX if args.optuna == "journal" else ""
    cores = os.cpu_count() or 1
    with postgres_server() as server, tempfile.TemporaryDirectory() as tmp:
        store = server.create_database("mlflow").replace("postgresql://", "postgresql+psycopg2://")
        mlflow, port = mlflow_server(Path(tmp), store)
        uri = f"http://127.0.0.1:{port}"
        try:
            for busy, counts in ((False, args.workers), (True, [n for n in args.workers if n <= cores])):
                kind = "CPU-bound" if busy else "sleep-bound"
                print(
                    f"\n{kind} trials of 0.5 s, Optuna's {args.optuna} storage on PostgreSQL, MLflow's server ({cores} cores)"
                )
                print(f"{'workers':>7} {'trials/s':>9} {'speed-up':>9} {'efficiency':>10}")
                base = None
                for n in counts:
                    rate = throughput(server, uri, Path(tmp), n, args.trials_per_worker, busy, prefix)
                    base = base or rate
                    print(f"{n:>7} {rate:>9.2f} {rate / base:>9.2f} {rate / (base * n):>10.2f}", flush=True)
        finally:
            stop_server(mlflow)


if __name__ == "__main__":
    main()
