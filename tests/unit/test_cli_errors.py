"""`loopml` error paths: one clear message and a non-zero exit, never a traceback.

A small HTTP server stands in for Airflow's API where the test needs it to answer an
error (a 500, a rejected trigger form); the client's retries are checked against a port
where nothing listens until the server comes up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loopml.airflow_client import AirflowClient, AirflowUnavailable

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeAirflow:
    """Answers (method, path prefix) -> (status, JSON body); 404 for anything else."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, dict]], port: int = 0) -> None:
        self.calls: list[tuple[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner.calls.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, body = next(
                    (
                        answer
                        for (method, prefix), answer in routes.items()
                        if method == self.command and self.path.startswith(prefix)
                    ),
                    (404, {"detail": "Not Found"}),
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_airflow():
    servers: list[FakeAirflow] = []

    def start(routes, port: int = 0) -> FakeAirflow:
        servers.append(FakeAirflow(routes, port))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def loopml(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    environ.update(LOOPML_HOME=str(tmp_path / "ws"), PYTHONPATH=str(REPO), **env)
    return subprocess.run(
        [sys.executable, "-m", "loopml.cli", *args], capture_output=True, text=True, env=environ, timeout=300
    )


def assert_clean_failure(out: subprocess.CompletedProcess, *expected: str) -> None:
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "Traceback" not in text, text
    for part in expected:
        assert part in text, text


def test_client_waits_for_an_api_that_comes_back(fake_airflow):
    port = free_port()
    said: list[str] = []
    client = AirflowClient(f"http://127.0.0.1:{port}", retry_s=60, say=said.append)
    starter = threading.Timer(
        1.5, lambda: fake_airflow({("GET", "/api/v2/dags/d/dagRuns/r"): (200, {"state": "running"})}, port)
    )
    starter.start()
    try:
        assert client.run_state("d", "r") == "running"
    finally:
        starter.join()
    assert said[0].startswith("Airflow API unavailable") and said[0].endswith("retrying for 60 s")
    assert said[-1] == "Airflow API is back" and len(said) == 2, "one notice per outage"


def test_client_retries_for_a_bounded_time_only():
    client = AirflowClient(f"http://127.0.0.1:{free_port()}", retry_s=2, say=lambda _: None)
    started = time.time()
    with pytest.raises(AirflowUnavailable, match="unavailable"):
        client.run_state("d", "r")
    assert time.time() - started < 10


def test_client_stops_retrying_when_the_stack_gave_up():
    client = AirflowClient(
        f"http://127.0.0.1:{free_port()}", retry_s=60, say=lambda _: None, give_up=lambda: "scheduler failed 6 times"
    )
    with pytest.raises(AirflowUnavailable, match="scheduler failed 6 times"):
        client.run_state("d", "r")


def test_run_against_an_unreachable_api_says_so_and_exits_non_zero(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    out = loopml(tmp_path, "run", "nocode_pipeline", LOOPML_AIRFLOW_URL=url, LOOPML_API_RETRY_S="2")
    assert_clean_failure(out, "Airflow API unavailable", "retrying for 2 s", url)


def test_run_with_a_rejected_trigger_form_prints_airflows_reason(tmp_path, fake_airflow):
    reason = "Invalid input for param n_trials: -5 is less than the minimum of 1"
    server = fake_airflow(
        {
            ("GET", "/api/v2/dags/nocode_pipeline"): (200, {"dag_id": "nocode_pipeline"}),
            ("PATCH", "/api/v2/dags/nocode_pipeline"): (200, {"dag_id": "nocode_pipeline"}),
            ("POST", "/api/v2/dags/nocode_pipeline/dagRuns"): (400, {"detail": reason}),
        }
    )
    out = loopml(tmp_path, "run", "nocode_pipeline", "--conf", '{"n_trials": -5}', LOOPML_AIRFLOW_URL=server.url)
    assert_clean_failure(out, f"Airflow refused the nocode_pipeline run: {reason}")
    assert sum(1 for method, _ in server.calls if method == "POST") == 1, "a refused trigger is not retried"


def test_an_airflow_server_error_is_one_message_pointing_to_the_log(tmp_path, fake_airflow):
    server = fake_airflow({("GET", "/api/v2/dags/"): (500, {"detail": "database is locked"})})
    log = tmp_path / "ws" / "airflow" / "logs" / "api-server.log"  # as a local stack's api-server writes it
    log.parent.mkdir(parents=True)
    log.write_text("sqlite3.OperationalError: database is locked\n")
    out = loopml(tmp_path, "run", "nocode_pipeline", LOOPML_AIRFLOW_URL=server.url)
    assert_clean_failure(out, "-> 500: database is locked", f"details: {log}")


def test_a_stack_that_cannot_start_is_one_message_pointing_to_the_log(tmp_path):
    out = loopml(
        tmp_path, "run", "nocode_pipeline", LOOPML_AIRFLOW_DB_URI=f"sqlite:///{tmp_path}/no/such/dir/airflow.db"
    )
    assert_clean_failure(out, "airflow db migrate failed", "db-migrate.log")


def test_status_without_a_stack(tmp_path):
    out = loopml(tmp_path, "status")
    assert out.returncode == 3 and "no loopml stack" in out.stdout and "loopml up" in out.stdout
