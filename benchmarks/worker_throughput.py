"""Trial throughput with N worker processes on a PostgreSQL Optuna storage.

Sleep-bound trials (0.5 s each) with N = 1, 2, 4, 8, 16 workers (goal: throughput of N
workers >= 0.9 x N x one worker's) and CPU-bound trials (0.5 s of CPU each) up to the
core count. Throughput is completed trials per second between the first trial's start
and the last trial's end, so process start-up is not counted. PostgreSQL is started on
loopback by the same harness as the tests; each worker is a real `run_worker` process
that also logs every trial to MLflow.

    .venv/bin/python benchmarks/worker_throughput.py [--workers 1 2 4 8 16] [--trials-per-worker 8]
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
from automl_tasks.data import bundled_frame  # noqa: E402
from automl_tasks.search import load_study, start_search  # noqa: E402
from tests.postgres_server import postgres_server  # noqa: E402
from tests.unit.test_search_engine import sleepy_plan  # noqa: E402
from tests.worker_processes import start_worker  # noqa: E402

SPACE = """
params:
  - {{name: x, type: float, range: [0, 1]}}
  - {{name: sleep_s, type: float_cat, range: [0.5]}}
  - {{name: busy, type: bool, range: [{busy}]}}
"""


def throughput(server, root: Path, n_workers: int, trials_per_worker: int, busy: bool) -> float:
    name = f"{'cpu' if busy else 'sleep'}{n_workers}"
    ws = Workspace.at(root / name).ensure()
    url = server.create_database(f"optuna_{name}").replace("postgresql://", "postgresql+psycopg2://")
    ws = dataclasses.replace(ws, optuna_uri=url)
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
    workers = [
        start_worker(ws, name, i, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n_workers)
    ]
    for worker in workers:
        worker.wait(timeout=1200)
    study, _ = load_study(ws.optuna_uri, name)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    return len(done) / (last - first).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--trials-per-worker", type=int, default=8)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with postgres_server() as server, tempfile.TemporaryDirectory() as tmp:
        for busy, counts in ((False, args.workers), (True, [n for n in args.workers if n <= cores])):
            kind = "CPU-bound" if busy else "sleep-bound"
            print(f"\n{kind} trials of 0.5 s, PostgreSQL storage ({cores} cores)")
            print(f"{'workers':>7} {'trials/s':>9} {'speed-up':>9} {'efficiency':>10}")
            base = None
            for n in counts:
                rate = throughput(server, Path(tmp), n, args.trials_per_worker, busy)
                base = base or rate
                print(f"{n:>7} {rate:>9.2f} {rate / base:>9.2f} {rate / (base * n):>10.2f}", flush=True)


if __name__ == "__main__":
    main()
