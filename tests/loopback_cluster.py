"""The distributed mode on one machine, as separate hosts would run it (issue #16).

Real servers on loopback: PostgreSQL (Airflow's metadata, Optuna, MLflow's store, the
inference log), Redis
(Celery's broker) and MLflow's tracking server with `--serve-artifacts` (which also serves
the datasets' DVC remote, over HTTP). The "scheduler host" runs the api-server, scheduler,
dag-processor and triggerer in one supervised process group (`loopml.embedded`, CeleryExecutor);
each Celery worker is its own process group in its own mount and host-name namespaces, with
its own scratch folder, and every other host's folder hidden under an empty tmpfs: a task that
reads a file another host wrote fails there, as on separate machines. What they share is
the code (the image) and the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from automl_tasks.core.settings import Workspace
from automl_tasks.core.store_urls import JOURNAL_PREFIX
from loopml.embedded import AirflowStack, ensure_stack
from tests.postgres_server import postgres_server
from tests.worker_processes import wait_until

REPO = Path(__file__).resolve().parents[1]
SCHEDULER_HOST = "scheduler"
#: what the simulation changes from Airflow's defaults, and why
CLUSTER_AIRFLOW_ENV = {
    # a killed worker's task is found without heartbeat after 20 s (default 300 s) ...
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # ... and retried 2 s later (default 300 s) on a worker that lives
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
    "LOOPML_DRIFT_SCHEDULE": "none",
}


@dataclass
class LoopbackCluster:
    """The running cluster: its settings, the scheduler host's stack and the Celery workers."""

    root: Path
    env: dict[str, str]  # the deployment profile every host gets
    stack: AirflowStack
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: task slots per worker: 2, so a search's job estimator and two workers (three long tasks)
    #: always span both hosts
    concurrency: int = 2

    def host(self, name: str) -> Path:
        return self.root / "hosts" / name

    def workspace(self, name: str = SCHEDULER_HOST) -> Workspace:
        return Workspace.from_env({**self.env, "LOOPML_HOME": str(self.host(name))})

    def start_worker(self, name: str) -> subprocess.Popen:
        """A Celery worker on host `name` (`loopml celery-worker`): its own folder, the other hosts' folders hidden."""
        home = self.host(name)
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "LOOPML_HOME": str(home), "LOOPML_AIRFLOW_URL": self.stack.url}
        env.pop("AIRFLOW_HOME", None)
        hidden = [p for p in (self.root / "hosts").iterdir() if p.name != name] + [self.root / "servers"]
        mounts = "".join(f"mount -t tmpfs -o size=1m,mode=0 tmpfs {shlex_quote(p)} && " for p in hidden)
        command = (
            f"hostname {name} && {mounts}exec {shlex_quote(sys.executable)} -m loopml.cli celery-worker"
            f" --concurrency {self.concurrency} -- --celery-hostname {name}@loopback --skip-serve-logs"
            " --without-mingle --without-gossip"
        )
        # own process group, mount namespace (the tmpfs hides the others) and host name (Airflow
        # records it on each task instance it runs)
        process = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", command],
            env=env,
            cwd=REPO,
            stdout=open(home / "worker.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers[name] = process
        return process

    def kill_worker(self, name: str) -> None:
        """SIGKILL every process of host `name` (the host loses power): every process in its
        mount namespace. Not the process tree: Airflow's task processes start process groups
        of their own, and Celery's process titles hide their environment."""
        process = self.workers[name]
        namespace = os.readlink(f"/proc/{process.pid}/ns/mnt")

        def on_host() -> list[int]:
            found = []
            for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
                with contextlib.suppress(OSError, psutil.Error):  # gone meanwhile
                    if os.readlink(f"/proc/{pid}/ns/mnt") == namespace and _running(psutil.Process(pid)):
                        found.append(pid)
            return found

        for _ in range(3):  # a fork between the listing and the kill is caught by the next round
            for pid in on_host():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        wait_until(lambda: not on_host(), 30, f"{name} powered off")

    def stop(self) -> None:
        """Power off every worker host (nothing on them outlives the test), then the scheduler host."""
        for name, process in list(self.workers.items()):
            if process.poll() is None:
                self.kill_worker(name)
        self.stack.stop()


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone meanwhile
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shlex_quote(path: object) -> str:
    import shlex

    return shlex.quote(str(path))


def _server(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        command, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=log.parent
    )


def stop_server(process: subprocess.Popen) -> None:
    """Stop a server started by `_server` and every process it started (MLflow's server runs
    uvicorn workers and job runners: killing the first process alone leaves them running)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _redis(root: Path) -> tuple[subprocess.Popen, int]:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, capture_output=True)
        redis_server = shutil.which("redis-server")
    port = _free_port()
    process = _server(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        root / "redis" / "redis.log",
    )
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=1)
    wait_until(lambda: _answers(client.ping), 30, "Redis to answer")
    return process, port


def _answers(call) -> bool:
    try:
        return bool(call())
    except Exception:
        return False


def mlflow_server(root: Path, store: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    process = _server(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            store,
            "--artifacts-destination",
            str(root / "mlflow" / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        root / "mlflow" / "server.log",
        env={**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    url = f"http://127.0.0.1:{port}/health"
    wait_until(lambda: _answers(lambda: httpx.get(url, trust_env=False).status_code == 200), 120, "MLflow's server")
    return process, port


@contextlib.contextmanager
def loopback_cluster(root: Path, workers: tuple[str, ...] = ("worker1", "worker2")) -> Iterator[LoopbackCluster]:
    """Start the servers, the scheduler host and the Celery workers; stop everything after."""
    servers = root / "servers"
    started: list[subprocess.Popen] = []
    saved = dict(os.environ)
    cluster: LoopbackCluster | None = None
    with postgres_server() as pg:
        try:
            psycopg2 = {name: pg.create_database(name).replace("postgresql://", "postgresql+psycopg2://") for name in (
                "airflow", "optuna", "mlflow", "inference")}  # fmt: skip
            redis, redis_port = _redis(servers)
            started.append(redis)
            mlflow, mlflow_port = mlflow_server(servers, psycopg2["mlflow"])
            started.append(mlflow)
            mlflow_url = f"http://127.0.0.1:{mlflow_port}"
            env = {
                "LOOPML_EXECUTOR": "celery",
                "LOOPML_AIRFLOW_DB_URI": psycopg2["airflow"],
                "LOOPML_OPTUNA_URI": JOURNAL_PREFIX + psycopg2["optuna"],  # Optuna's journal in PostgreSQL
                "LOOPML_MLFLOW_URI": mlflow_url,
                "LOOPML_DVC_REMOTE": f"{mlflow_url}/api/2.0/mlflow-artifacts/artifacts/datasets",
                "LOOPML_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
                "LOOPML_INFERENCE_LOG_URI": psycopg2["inference"],
                **CLUSTER_AIRFLOW_ENV,
            }
            for name in (SCHEDULER_HOST, *workers):
                (root / "hosts" / name).mkdir(parents=True, exist_ok=True)
            os.environ.update(env)  # the scheduler host's processes read it (restored at exit)
            os.environ["LOOPML_HOME"] = str(root / "hosts" / SCHEDULER_HOST)
            ws = Workspace.from_env().ensure()
            stack = ensure_stack(ws, port=_free_port())
            cluster = LoopbackCluster(root, env, stack)
            # the stack requires a login: every AirflowClient of the test process logs in as admin
            passwords = json.loads((ws.airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
            os.environ.update({"LOOPML_AIRFLOW_USER": "admin", "LOOPML_AIRFLOW_PASSWORD": passwords["admin"]})
            for name in workers:
                cluster.start_worker(name)
            yield cluster
        finally:
            if cluster is not None:
                cluster.stop()
            for process in started:
                stop_server(process)
            os.environ.clear()
            os.environ.update(saved)


def wait_for_celery_workers(cluster: LoopbackCluster, timeout_s: float = 120) -> None:
    """Until every worker has said it is ready in its log (Celery's "ready." line)."""

    def ready() -> bool:
        for name, process in cluster.workers.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited: {(cluster.host(name) / 'worker.log').read_text()[-3000:]}")
        return all(b"ready." in (cluster.host(n) / "worker.log").read_bytes() for n in cluster.workers)

    wait_until(ready, timeout_s, "every Celery worker ready", poll_s=0.5)
