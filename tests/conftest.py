"""Shared fixtures: a fresh workspace per test and small tables written to disk."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from automl_tasks.core.settings import Workspace

REPO_ROOT = Path(__file__).resolve().parent.parent
# caches Python and the tools write beside the code; everything else new is run output
_CACHES = ("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".import_linter_cache", ".egg-info")


def checkout_entries() -> set[str] | None:
    """`git status --porcelain --ignored` of the checkout, caches left out; None outside git."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--ignored"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return {line for line in out.stdout.splitlines() if line and not any(c in line for c in _CACHES)}


@pytest.fixture(scope="session", autouse=True)
def _checkout_stays_clean():
    """The suite writes only into temporary workspaces: any file it leaves in the checkout
    (tracked or not, ignored or not) fails the run, naming the files."""
    before = checkout_entries()
    yield
    after = checkout_entries()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        pytest.fail("the test suite left files in the checkout: " + ", ".join(new[:20]), pytrace=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.at(tmp_path / "ws").ensure()


@pytest.fixture(autouse=True)
def _quiet_libraries():
    for name in ("great_expectations", "dvc", "alembic", "mlflow", "matplotlib"):
        logging.getLogger(name).setLevel(logging.WARNING)
    yield


@pytest.fixture
def breast_cancer_frame():
    from automl_tasks.data import bundled_frame

    return bundled_frame("breast_cancer")
