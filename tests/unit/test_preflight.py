"""A wrong store URL, a broker that is down or an MLflow server that does not answer is one
clear message naming the setting, before anything starts (issue #16)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from automl_tasks.core.profile import DeploymentProfile
from automl_tasks.core.settings import Workspace
from loopml.embedded import StackError, ensure_stack
from loopml.preflight import unreachable

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _celery_env(home: Path, port: int) -> dict[str, str]:
    return {
        "LOOPML_HOME": str(home),
        "LOOPML_EXECUTOR": "celery",
        "LOOPML_AIRFLOW_DB_URI": f"postgresql+psycopg2://airflow:s3cret@127.0.0.1:{port}/airflow",
        "LOOPML_OPTUNA_URI": f"postgresql+psycopg2://airflow:s3cret@127.0.0.1:{port}/optuna",
        "LOOPML_MLFLOW_URI": f"http://127.0.0.1:{port}",
        "LOOPML_DVC_REMOTE": f"http://127.0.0.1:{port}/api/2.0/mlflow-artifacts/artifacts/datasets",
        "LOOPML_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        "LOOPML_INFERENCE_LOG_URI": f"postgresql+psycopg2://airflow:s3cret@127.0.0.1:{port}/inference",
    }


def test_every_unreachable_setting_is_named_without_its_password(tmp_path):
    env = _celery_env(tmp_path / "ws", _closed_port())
    problems = unreachable(DeploymentProfile.from_env(env).check())
    assert [p.split("=")[0] for p in problems] == [
        "LOOPML_AIRFLOW_DB_URI",
        "LOOPML_OPTUNA_URI",
        "LOOPML_INFERENCE_LOG_URI",
        "LOOPML_MLFLOW_URI",
        "LOOPML_BROKER_URL",
    ], problems
    assert not [p for p in problems if "s3cret" in p], "a password reached a message"
    assert "airflow:***@" in problems[0] and "refused" in " ".join(problems).lower()


def test_the_embedded_profile_has_nothing_to_reach(tmp_path):
    assert unreachable(DeploymentProfile.from_env({"LOOPML_HOME": str(tmp_path / "ws")})) == []


def test_no_half_started_stack(tmp_path, monkeypatch):
    """ensure_stack refuses before any process starts or any file of the stack is written."""
    import psutil

    env = _celery_env(tmp_path / "ws", _closed_port())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ws = Workspace.from_env().ensure()
    children = set(psutil.Process().children(recursive=True))
    with pytest.raises(StackError, match=r"cannot start the stack: LOOPML_AIRFLOW_DB_URI=.*LOOPML_BROKER_URL="):
        ensure_stack(ws, port=_closed_port())
    assert set(psutil.Process().children(recursive=True)) <= children, "a component was started"
    assert not (ws.airflow_home / "stack.json").exists() and not (ws.airflow_home / "logs").exists()


def test_the_cli_says_it_in_one_line(tmp_path):
    env = {**os.environ, **_celery_env(tmp_path / "ws", _closed_port()), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "loopml.cli", "up"], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert "cannot start the stack: LOOPML_AIRFLOW_DB_URI=" in out.stdout + out.stderr


def test_an_inconsistent_profile_is_refused_before_reaching_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("LOOPML_EXECUTOR", "celery")  # SQLite stores, no broker
    out = subprocess.run(
        [sys.executable, "-m", "loopml.cli", "up"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert "deployment settings: LOOPML_AIRFLOW_DB_URI: the celery executor needs PostgreSQL" in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"LOOPML_EXECUTOR": "local"}, "a Celery worker needs LOOPML_EXECUTOR=celery; got 'local'"),
        ({"LOOPML_AIRFLOW_URL": ""}, "set LOOPML_AIRFLOW_URL to the api-server this worker runs tasks for"),
        ({}, "cannot start the worker: LOOPML_AIRFLOW_DB_URI="),
    ],
)
def test_a_worker_host_refuses_to_start_with_one_line(tmp_path, extra, message):
    settings = {**_celery_env(tmp_path / "ws", _closed_port()), "LOOPML_AIRFLOW_URL": "http://127.0.0.1:9", **extra}
    env = {**os.environ, **settings, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "loopml.cli", "celery-worker"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert message in out.stdout + out.stderr, out.stdout + out.stderr
