"""The embedded mode's Airflow: api-server, scheduler and dag-processor on one machine.

Everything lives in the workspace (SQLite metadata DB, logs); the api-server listens on
loopback only and, being a single-user local stack, runs the simple auth manager with
every user an admin. The distributed mode uses docker/ and real authentication instead.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from automl_tasks.settings import Workspace
from loopml.processes import alive, stop_tree

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("api-server", "scheduler", "dag-processor")
DEFAULT_PORT = 8080
SQLITE_BUSY_TIMEOUT_S = 30


class StackError(RuntimeError):
    """The embedded Airflow stack could not start or stopped answering."""


def free_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else any free loopback port."""
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", preferred)) != 0:
            return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _secret(ws: Workspace, name: str) -> str:
    path = ws.airflow_home / f".{name}"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(ws: Workspace, port: int, parallelism: int = 16) -> dict[str, str]:
    """Environment for every Airflow process of this workspace."""
    db = ws.airflow_home / "airflow.db"
    env = dict(os.environ)
    env.update(ws.env())
    env.update(
        {
            "AIRFLOW_HOME": str(ws.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # distributed mode: LOOPML_AIRFLOW_DB_URI names a PostgreSQL metadata database
            # embedded: SQLite with a 30 s busy timeout (pysqlite's default is 5 s) so that a
            # writer waits for the lock instead of failing; see docs/DESIGN.md, "Embedded metadata DB"
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ.get("LOOPML_AIRFLOW_DB_URI")
            or f"sqlite:///{db}?timeout={SQLITE_BUSY_TIMEOUT_S}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": _secret(ws, "api_secret_key"),
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(ws, "jwt_secret"),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
            "NO_PROXY": "*",
        }
    )
    return env


@dataclass
class AirflowStack:
    """The processes of one workspace's Airflow, recorded in `airflow/stack.json`."""

    ws: Workspace
    port: int
    pids: dict[str, int] = field(default_factory=dict)
    owned: bool = True  # False when this process reuses a stack someone else started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.ws.airflow_home / "stack.json"

    @classmethod
    def running(cls, ws: Workspace) -> AirflowStack | None:
        """The stack already running on this workspace (e.g. from `loopml up`), if healthy."""
        state = ws.airflow_home / "stack.json"
        if not state.exists():
            return None
        data = json.loads(state.read_text())
        if not all(alive(pid) for pid in data["pids"].values()):
            return None
        stack = cls(ws, data["port"], data["pids"], owned=False)
        from loopml.airflow_client import AirflowClient

        return stack if AirflowClient(stack.url).healthy() else None

    def migrate(self) -> None:
        """Create or upgrade the metadata DB (idempotent)."""
        log = self.ws.airflow_home / "logs" / "db-migrate.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            code = subprocess.call(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=airflow_env(self.ws, self.port),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if code != 0:
            raise StackError(f"airflow db migrate failed (exit {code}); see {log}")

    def start(self) -> None:
        self.migrate()
        env = airflow_env(self.ws, self.port)
        logs = self.ws.airflow_home / "logs"
        for component in COMPONENTS:
            cmd = [sys.executable, "-m", "airflow", component]
            if component == "api-server":
                cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
            out = (logs / f"{component}.log").open("ab")
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self.pids[component] = proc.pid
        self.state_file.write_text(json.dumps({"port": self.port, "pids": self.pids}))

    def wait_ready(self, timeout_s: float = 180) -> None:
        from loopml.airflow_client import AirflowClient

        client = AirflowClient(self.url)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            dead = [c for c, pid in self.pids.items() if not alive(pid)]
            if dead:
                raise StackError(f"Airflow {', '.join(dead)} exited; see {self.ws.airflow_home / 'logs'}")
            if client.healthy():
                return
            time.sleep(1)
        raise StackError(f"Airflow api-server not ready after {timeout_s:.0f}s; see {self.ws.airflow_home / 'logs'}")

    def stop(self) -> None:
        """Stop the components this process started (and every process they spawned)."""
        if not self.owned:
            return
        for pid in self.pids.values():
            stop_tree(pid)
        self.state_file.unlink(missing_ok=True)


def ensure_stack(ws: Workspace, port: int = DEFAULT_PORT) -> AirflowStack:
    """Reuse the workspace's running stack or start a new one (owned by the caller)."""
    existing = AirflowStack.running(ws)
    if existing:
        return existing
    stack = AirflowStack(ws, free_port(port))
    stack.start()
    try:
        stack.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack
