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


_CHECKOUT_BEFORE = pytest.StashKey[set[str] | None]()
#: the xdist group of every test that starts or uses a real Airflow stack: they run one after
#: another on one worker, as without xdist, while the other worker runs the rest module by module
STACK_GROUP = "airflow-stacks"
_E2E_DIR = REPO_ROOT / "tests" / "e2e"


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _is_xdist_worker(session.config):
        session.config.stash[_CHECKOUT_BEFORE] = checkout_entries()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite writes only into temporary workspaces: any file it leaves in the checkout
    (tracked or not, ignored or not) fails the run, naming the files. Checked once, by the
    process that owns the whole session (xdist's controller), after every worker has stopped:
    a per-worker check would see the other worker mid-test."""
    if _is_xdist_worker(session.config):
        return
    before = session.config.stash.get(_CHECKOUT_BEFORE, None)
    after = checkout_entries()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line("FAILED: the test suite left files in the checkout: " + ", ".join(new[:20]), red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for `pytest -n 2 --dist loadgroup` (what `make test` runs): the Airflow-stack tests
    in one group, and every other module as a group of its own, so module-scoped fixtures (a
    BentoML server, a fitted family) are built once, on one worker."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        path = Path(str(item.path))
        if "airflow" in getattr(item, "fixturenames", ()) or path.is_relative_to(_E2E_DIR):
            group = STACK_GROUP
        else:
            group = path.relative_to(REPO_ROOT).as_posix()
        item.add_marker(pytest.mark.xdist_group(group))


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
