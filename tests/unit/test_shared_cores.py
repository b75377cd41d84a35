"""Every process loopml starts shares the cores: OpenMP's idle threads sleep, never spin
(automl_tasks/core/shared_cores.py), unless the user chose a policy themselves."""

from __future__ import annotations

import subprocess
import sys

from automl_tasks.core.settings import Workspace
from automl_tasks.core.shared_cores import OMP_WAIT_POLICY
from loopml.embedded import airflow_env


def _openmp_spin_count(env: dict[str, str]) -> str:
    """GOMP_SPINCOUNT as torch's OpenMP runtime reports it in a process started with `env`
    (0: waiting threads sleep at once; 300000 by default)."""
    shown = subprocess.run(
        [sys.executable, "-c", "import torch; torch.ones(4).sum()"],
        env={**env, "OMP_DISPLAY_ENV": "VERBOSE"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in shown.stderr.splitlines() if "GOMP_SPINCOUNT" in line]
    assert lines, shown.stderr[-2000:]
    return lines[0].split("=")[1].strip().strip("'")


def test_an_airflow_process_of_the_stack_never_spins_its_openmp_threads(tmp_path, monkeypatch):
    monkeypatch.delenv(OMP_WAIT_POLICY, raising=False)  # the test session sets it for itself
    ws = Workspace.at(tmp_path / "ws").ensure()
    env = airflow_env(ws, 18999)
    assert _openmp_spin_count(env) == "0"
    assert _openmp_spin_count({k: v for k, v in env.items() if k != OMP_WAIT_POLICY}) != "0"  # what it guards


def test_a_policy_the_user_chose_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(OMP_WAIT_POLICY, "ACTIVE")
    assert Workspace.at(tmp_path / "ws").env()[OMP_WAIT_POLICY] == "ACTIVE"
