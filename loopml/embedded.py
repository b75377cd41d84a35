"""The embedded mode's Airflow: api-server, scheduler, dag-processor and triggerer on one machine.

Everything lives in the workspace (SQLite metadata DB, logs); the api-server listens on
loopback only and, being a single-user local stack, runs the simple auth manager with
every user an admin. The distributed mode uses docker/ and real authentication instead.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from automl_tasks.core.profile import DeploymentProfile
from automl_tasks.core.settings import Workspace
from loopml.preflight import unreachable
from loopml.processes import alive
from loopml.supervisor import Component, Supervisor, stop_leftovers

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Airflow's executor for each profile (`automl_tasks.core.profile.EXECUTORS`); the embedded
#: one preloads loopml's task modules before forking (see loopml/preloading_executor.py)
EXECUTOR_CLASS = {
    "local": "loopml.preloading_executor.PreloadingLocalExecutor",
    "celery": "CeleryExecutor",
    "kubernetes": "KubernetesExecutor",
}
#: the triggerer's clean stop before it is told to exit now: loopml defers no task to it
#: today, and a trigger it drops is picked up again from the metadata DB at the next start
TRIGGERER_STOP_GRACE_S = 3.0
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
    """Environment for every Airflow process of this workspace (its executor and databases
    from the deployment profile: LOOPML_EXECUTOR and the settings in docs/DISTRIBUTED.md)."""
    db = ws.airflow_home / "airflow.db"
    profile = DeploymentProfile.from_env().check()
    env = dict(os.environ)
    env.update(ws.env())
    env.update(
        {
            "AIRFLOW_HOME": str(ws.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": EXECUTOR_CLASS[profile.executor],
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # the embedded stack is one user's, on loopback: everyone is an admin; a distributed
            # stack requires a login (named users; clients log in with LOOPML_AIRFLOW_USER)
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": str(not profile.distributed),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # distributed mode: LOOPML_AIRFLOW_DB_URI names a PostgreSQL metadata database
            # embedded: SQLite with a 30 s busy timeout (pysqlite's default is 5 s) so that a
            # writer waits for the lock instead of failing; see docs/DESIGN.md, "Embedded metadata DB"
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": profile.airflow_db_uri
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
            # running tasks ride out an api-server restart by the supervisor (tens of seconds):
            # Airflow's default (5 tries, 1-90 s random backoff) can give up after a few seconds
            "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "12",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": "2",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "30",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
            "NO_PROXY": "*",
        }
    )
    if profile.distributed:
        env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    if profile.executor == "celery":
        env.update(celery_env(profile))
    return env


def worker_host_env(ws: Workspace, api_url: str) -> dict[str, str]:
    """Environment of a Celery worker host: this machine's workspace (`ws`), the profile's
    stores and broker, and the api-server it runs tasks for (`api_url`, on another machine)."""
    env = airflow_env(ws, 0)
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"{api_url.rstrip('/')}/execution/"
    env["AIRFLOW__API__BASE_URL"] = api_url.rstrip("/")
    return env


#: `[celery] celery_config_options`: Airflow's Celery settings plus the workers' preload
CELERY_CONFIG_PATH = "loopml.celery_config.CELERY_CONFIG"


def celery_env(profile: DeploymentProfile) -> dict[str, str]:
    """Celery's settings: the broker, task results in the metadata database (PostgreSQL), and
    loopml's Celery configuration (its worker preloads the task libraries: loopml/celery_config.py)."""
    return {
        "AIRFLOW__CELERY__BROKER_URL": profile.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + profile.airflow_db_uri,
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": CELERY_CONFIG_PATH,
    }


@dataclass
class AirflowStack:
    """One workspace's Airflow (and, for `loopml up`, the MLflow UI), supervised.

    The stack that a command starts is owned by it: a `Supervisor` restarts components that
    exit or hang and stops everything with the command. Another command on the same
    workspace reuses it (`owned=False`) through `airflow/stack.json`.
    """

    ws: Workspace
    port: int
    owned: bool = True  # False when this process reuses a stack someone else started
    supervisor: Supervisor | None = None
    mlflow_port: int | None = None
    external_url: str | None = None  # an Airflow this command uses but does not run (LOOPML_AIRFLOW_URL)

    @property
    def url(self) -> str:
        return self.external_url or f"http://127.0.0.1:{self.port}"

    @property
    def mlflow_url(self) -> str | None:
        return f"http://127.0.0.1:{self.mlflow_port}" if self.mlflow_port else None

    @property
    def state_file(self) -> Path:
        return state_file(self.ws)

    @property
    def logs(self) -> Path:
        return self.ws.airflow_home / "logs"

    @classmethod
    def running(cls, ws: Workspace) -> AirflowStack | None:
        """The stack already running on this workspace (e.g. from `loopml up`), if its supervisor lives.

        A stack whose supervisor died without stopping it (SIGKILL, power loss of the
        terminal) leaves processes behind: they are ended here before a new stack starts.
        """
        state = read_state(ws)
        if not state or "supervisor_pid" not in state:
            return None
        if state.get("status") == "running" and alive(state["supervisor_pid"]):
            return cls(ws, state["port"], owned=False, mlflow_port=state.get("mlflow_port"))
        leftovers = stop_leftovers(state["tracking"]) if state.get("tracking") else 0
        if leftovers:
            print(f"ended {leftovers} leftover processes of an earlier stack on {ws.home}", flush=True)
        return None

    def failure(self) -> str | None:
        """Why the stack stopped on its own (its supervisor gave up), else None."""
        if self.external_url:
            return None
        if self.supervisor:
            return self.supervisor.failure
        state = read_state(self.ws) or {}
        if state.get("status") == "failed":
            return state.get("failure") or f"the Airflow stack failed; see {self.logs / 'stack.log'}"
        if state.get("status") == "stopped":
            return f"the Airflow stack was stopped by the command that started it (pid {state.get('supervisor_pid')})"
        if state.get("status") == "running" and not alive(state.get("supervisor_pid", 0)):
            return f"the process supervising the Airflow stack (pid {state.get('supervisor_pid')}) is gone"
        return None

    def migrate(self) -> None:
        """Create or upgrade the metadata DB (idempotent)."""
        log = self.logs / "db-migrate.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            code = subprocess.call(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=airflow_env(self.ws, self.port),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if code != 0:
            lines = log.read_text(errors="replace").strip().splitlines() or [""]
            errors = [line for line in lines if "Error:" in line or "Exception:" in line]
            raise StackError(f"airflow db migrate failed (exit {code}): {(errors or lines)[-1][:300]}; see {log}")

    def components(self) -> list[Component]:
        env = airflow_env(self.ws, self.port)
        found = []
        for name in COMPONENTS:
            cmd = [sys.executable, "-m", "airflow", name]
            if name == "api-server":
                cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
            found.append(
                Component(
                    name,
                    cmd,
                    self.logs / f"{name}.log",
                    env,
                    keeps_busy_leftovers=name == "scheduler",
                    has_heartbeat=True,
                    stop_last=name == "api-server",
                    stop_grace_s=TRIGGERER_STOP_GRACE_S if name == "triggerer" else None,
                    after_start=functools.partial(warm_execution_api, self.url) if name == "api-server" else None,
                )
            )
        if self.mlflow_port:
            cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", self.ws.mlflow_uri]
            cmd += ["--default-artifact-root", self.ws.mlflow_artifacts.as_uri()]
            cmd += ["--host", "127.0.0.1", "--port", str(self.mlflow_port)]
            found.append(Component("mlflow-ui", cmd, self.logs / "mlflow-ui.log", dict(os.environ, **self.ws.env())))
        return found

    def start(self, say=print) -> None:
        """Migrate the DB, start every component and supervise them from a background thread."""
        self.migrate()
        self.supervisor = Supervisor(
            self.components(),
            state_file=self.state_file,
            stack_log=self.logs / "stack.log",
            heartbeats=_heartbeat_probe(self.url, self.mlflow_url),
            info={"port": self.port, "url": self.url, "mlflow_port": self.mlflow_port, "mlflow_url": self.mlflow_url},
            say=say,
            hang_after_s=float(os.environ.get("LOOPML_HANG_AFTER_S", "120")),
        )
        self.supervisor.start()
        self.supervisor.run_in_thread()

    def wait_ready(self, timeout_s: float = 240) -> None:
        from loopml.airflow_client import AirflowClient

        client = AirflowClient(self.url, retry_s=0)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            failure = self.failure()
            if failure:
                raise StackError(failure)
            if client.healthy():
                warm_execution_api(self.url)  # at once when the api-server's own warm-up is done
                return
            time.sleep(1)
        raise StackError(f"Airflow api-server not ready after {timeout_s:.0f}s; see the logs in {self.logs}")

    def stop(self) -> None:
        """Stop every process this stack started (leftovers of restarted components included)."""
        if self.owned and self.supervisor:
            self.supervisor.stop()


#: how long a (re)started api-server may take to answer its task execution API's first request
EXECUTION_API_WARM_S = 120.0


def warm_execution_api(url: str, _pid: int | None = None, *, timeout_s: float = EXECUTION_API_WARM_S) -> bool:
    """Ask the api-server's task execution API once, as soon as it answers; whether it did.
    Why: the first request to that API pays 4-6 s of lazy set-up inside the api-server, which
    otherwise fell on the first task after every (re)start of it (a new stack's first NoCode
    run spent 4 s in `start`, the next 0.5 s). Asked at start-up, it overlaps the scheduler's
    own start. `_pid`: the supervisor's after-start argument, unused."""
    import httpx

    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=timeout_s, trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{url}/execution/health").status_code == 200:
                    return True
            except httpx.HTTPError:  # not listening yet (or restarting): ask again
                pass
            time.sleep(0.5)
    log.warning("the api-server's task execution API did not answer within %.0f s", timeout_s)
    return False


def state_file(ws: Workspace) -> Path:
    return ws.airflow_home / "stack.json"


def read_state(ws: Workspace) -> dict[str, Any] | None:
    """The supervisor's last written state of the workspace's stack, if any."""
    try:
        return json.loads(state_file(ws).read_text())
    except (OSError, ValueError):
        return None


def _heartbeat_probe(url: str, mlflow_url: str | None):
    """Last signs of life per component, from Airflow's health API (and MLflow's /health)."""
    import httpx

    http = httpx.Client(timeout=10, trust_env=False)
    last_answer = {"api-server": 0.0}
    keys = {
        "scheduler": ("scheduler", "latest_scheduler_heartbeat"),
        "dag-processor": ("dag_processor", "latest_dag_processor_heartbeat"),
        "triggerer": ("triggerer", "latest_triggerer_heartbeat"),
    }

    def beats() -> dict[str, float | None]:
        found: dict[str, float | None] = {}
        if mlflow_url:
            try:
                found["mlflow-ui"] = time.time() if http.get(f"{mlflow_url}/health").status_code == 200 else None
            except httpx.HTTPError:
                found["mlflow-ui"] = None
        try:
            health = http.get(f"{url}/api/v2/monitor/health").json()
        except (httpx.HTTPError, ValueError):
            return {**found, "api-server": last_answer["api-server"]}
        last_answer["api-server"] = time.time()
        found["api-server"] = last_answer["api-server"]
        for component, (section, key) in keys.items():
            stamp = (health.get(section) or {}).get(key)
            found[component] = datetime.fromisoformat(stamp).timestamp() if stamp else 0.0
        return found

    return beats


def ensure_stack(ws: Workspace, port: int = DEFAULT_PORT, *, mlflow_port: int | None = None, say=print) -> AirflowStack:
    """Reuse the workspace's running stack or start a new, supervised one (owned by the caller).

    LOOPML_AIRFLOW_URL names an Airflow run elsewhere (e.g. the distributed mode's): it is
    used as it is, nothing is started.
    """
    if os.environ.get("LOOPML_AIRFLOW_URL"):
        return AirflowStack(ws, 0, owned=False, external_url=os.environ["LOOPML_AIRFLOW_URL"].rstrip("/"))
    existing = AirflowStack.running(ws)
    if existing:
        return existing
    problems = unreachable(DeploymentProfile.from_env().check())
    if problems:  # before anything starts: no half-started stack
        raise StackError("cannot start the stack: " + "; ".join(problems))
    stack = AirflowStack(ws, free_port(port), mlflow_port=free_port(mlflow_port) if mlflow_port else None)
    try:
        stack.start(say=say)
        stack.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack
