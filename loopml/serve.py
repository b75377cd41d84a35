"""Start and stop a BentoML server for a model family on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from automl_tasks.core.settings import Workspace
from loopml.embedded import REPO_ROOT, free_port
from loopml.processes import stop_tree


@dataclass
class BentoServer:
    """A `bentoml serve` process serving one family."""

    family: str
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"bentoml serve exited with {self.process.returncode}; see its log above/in the workspace"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"BentoML server for {self.family} not ready after {timeout_s:.0f}s")

    def stop(self) -> None:
        """Stop the server and its workers (BentoML starts them in sessions of their own)."""
        stop_tree(self.process.pid)
        self.process.poll()


def start_server(
    ws: Workspace, family: str, port: int = 3000, log_file=None, extra_env: dict[str, str] | None = None
) -> BentoServer:
    """`bentoml serve serving.service:FamilyService` for `family` on 127.0.0.1.

    `extra_env` sets serving options (LOOPML_CANARY_SHARE, LOOPML_API_KEY, ...; see serving.settings).
    """
    port = free_port(port)
    env = dict(os.environ)
    env.update(ws.env())
    env.update(extra_env or {})
    env["LOOPML_FAMILY"] = family
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["BENTOML_DO_NOT_TRACK"] = "True"
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:FamilyService",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--working-dir",
        str(REPO_ROOT),
    ]
    process = subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO_ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT if log_file else None,
        start_new_session=True,
    )
    return BentoServer(family, port, process)
