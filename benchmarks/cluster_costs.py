"""What one trial and one task cost the shared services of the distributed mode (issue #16).

Starts the loopback cluster of the tests (PostgreSQL, Redis, MLflow's tracking server, the
Airflow scheduler host and two Celery workers as separate hosts: tests/loopback_cluster.py),
runs two NoCode searches of different sizes through Airflow and measures, over each run:
- PostgreSQL transactions in Optuna's, MLflow's and Airflow's databases (`pg_stat_database`);
- MLflow server requests (its access log);
- CPU seconds of PostgreSQL, of MLflow's server and of the Airflow scheduler host (process
  trees, reaped children included).
The difference of the two runs over the difference of their trial counts is what one more
trial costs (fixed per-run costs cancel out).
These are the inputs of the projection to 100 and 1,000 workers in docs/BENCHMARKS.md.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/cluster_costs.py [--trials 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from loopml.airflow_client import AirflowClient  # noqa: E402
from tests.family_builder import LINEAR_SPACE  # noqa: E402
from tests.loopback_cluster import loopback_cluster, wait_for_celery_workers  # noqa: E402


def _tree_cpu(root: psutil.Process) -> float:
    """CPU seconds of `root` and its descendants, children already reaped included."""
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _find(pattern: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if re.search(pattern, cmd):
            found.append(proc)
    return [p for p in found if p.parent() is None or not re.search(pattern, " ".join(p.parent().cmdline()))]


def _cpu(pattern: str) -> float:
    return sum(_tree_cpu(p) for p in _find(pattern))


def _commits(port: int) -> dict[str, int]:
    out = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-At", "-c",
         "SELECT datname, xact_commit FROM pg_stat_database WHERE datname IN ('airflow', 'optuna', 'mlflow')"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {line.split("|")[0]: int(line.split("|")[1]) for line in out.stdout.split()}


def _requests(log: Path) -> int:
    pattern = re.compile(r'"(GET|POST|PUT|HEAD|PATCH|DELETE) /')
    return sum(1 for line in log.read_text(errors="replace").splitlines() if pattern.search(line))


def measure(cluster, port: int, trials: int, workers: int, family: str) -> dict:
    client = AirflowClient(cluster.stack.url)
    log = cluster.root / "servers" / "mlflow" / "server.log"
    before = {
        "commits": _commits(port),
        "requests": _requests(log),
        "pg": _cpu(r"postgres -D"),
        "mlflow": _cpu(r"mlflow server"),
        "scheduler": _cpu(r"airflow scheduler"),
    }
    started = time.perf_counter()
    conf = {"dataset": "breast_cancer", "n_trials": trials, "n_workers": workers, "search_space": LINEAR_SPACE,
            "family": family, "time_budget_s": 600, "trust_report": False, "ensemble": False}  # fmt: skip
    run_id = client.trigger("nocode_pipeline", conf)
    state = client.wait_for_run("nocode_pipeline", run_id, timeout_s=1200)
    wall = time.perf_counter() - started
    tasks = len(client.task_instances("nocode_pipeline", run_id))
    after = {
        "commits": _commits(port),
        "requests": _requests(log),
        "pg": _cpu(r"postgres -D"),
        "mlflow": _cpu(r"mlflow server"),
        "scheduler": _cpu(r"airflow scheduler"),
    }
    commits = {db: after["commits"][db] - before["commits"][db] for db in before["commits"]}
    return {
        "state": state,
        "trials": trials,
        "workers": workers,
        "task_instances": tasks,
        "wall_s": round(wall, 1),
        "optuna_tx": commits["optuna"],
        "mlflow_tx": commits["mlflow"],
        "airflow_tx": commits["airflow"],
        "mlflow_requests": after["requests"] - before["requests"],
        "pg_cpu_s": round(after["pg"] - before["pg"], 2),
        "mlflow_server_cpu_s": round(after["mlflow"] - before["mlflow"], 2),
        "scheduler_host_cpu_s": round(after["scheduler"] - before["scheduler"], 2),
    }


PER_TRIAL = ("optuna_tx", "mlflow_tx", "mlflow_requests", "pg_cpu_s", "mlflow_server_cpu_s")


def marginal(small: dict, large: dict) -> dict:
    """What one more trial costs: the difference of two runs over the difference of their
    trial counts (a run's fixed costs, its other tasks and its registration, cancel out)."""
    extra = large["trials"] - small["trials"]
    out = {f"{key}_per_trial": round((large[key] - small[key]) / extra, 3) for key in PER_TRIAL}
    out["airflow_tx_per_task"] = round(large["airflow_tx"] / large["task_instances"], 1)
    out["scheduler_host_cpu_s_per_run"] = large["scheduler_host_cpu_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[20, 60])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import tests.postgres_server as pg_module

    ports: list[int] = []
    original = pg_module.PostgresServer.create_database

    def remember(self, name):  # the server's port, for pg_stat_database
        ports.append(self.port)
        return original(self, name)

    pg_module.PostgresServer.create_database = remember
    with tempfile.TemporaryDirectory() as tmp, loopback_cluster(Path(tmp) / "cluster") as cluster:
        wait_for_celery_workers(cluster)
        client = AirflowClient(cluster.stack.url)
        client.wait_for_dag("nocode_pipeline")
        client.unpause("nocode_pipeline")
        runs = []
        for i, trials in enumerate(args.trials):
            runs.append(measure(cluster, ports[0], trials, args.workers, f"costs{i}"))
            print(json.dumps(runs[-1]), flush=True)
        print(json.dumps({"marginal": marginal(runs[0], runs[-1])}), flush=True)


if __name__ == "__main__":
    main()
