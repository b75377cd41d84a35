"""Real `run_worker` processes (and other loopml code) in child Python processes, for the
tests and benchmarks that need separate processes: a worker that can be SIGKILLed, N
workers racing on one PostgreSQL study, N promotions racing on one registry; and
`wait_until`, how those tests wait for what the processes do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from automl_tasks.core.settings import Workspace

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")

#: prints the worker's summary (a JSON object) as its last line
WORKER_CODE = (
    "import json; from dataclasses import asdict; from automl_tasks.search import run_worker; "
    "from automl_tasks.core.settings import Workspace; "
    "print(json.dumps(asdict(run_worker(Workspace.from_env(), {name!r}, {index}))), flush=True)"
)


def process_env(ws: Workspace, **extra: str) -> dict[str, str]:
    """The environment of a child process working on `ws` with this checkout first on the path."""
    return {**os.environ, **ws.env(), "PYTHONPATH": str(REPO), **extra}


def start_python(code: str, ws: Workspace, *, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """`python -c code` in the repository root, pointed at `ws` (plus `env`)."""
    return subprocess.Popen([sys.executable, "-c", code], env=process_env(ws, **(env or {})), cwd=REPO, **popen)


def start_worker(
    ws: Workspace, study_name: str, index: int, *, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen:
    """A real search worker process on `study_name` (its summary is its last stdout line)."""
    return start_python(WORKER_CODE.format(name=study_name, index=index), ws, env=env, **popen)


def worker_summary(process: subprocess.Popen, timeout: float) -> dict[str, Any]:
    """Wait for a worker started with stdout=PIPE, text=True; its summary as a dict."""
    out, _ = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise AssertionError(f"worker exited with {process.returncode}: {out[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def wait_until(condition: Callable[[], T], timeout_s: float = 30.0, what: str = "condition", poll_s: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy and return that; fail naming `what`."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
