"""Shared fixtures: a fresh workspace per test and small tables written to disk."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

# One OpenBLAS thread in every test process and in the stacks and workers they start (which
# inherit the environment), set before NumPy loads OpenBLAS. The suite runs two xdist workers
# on two cores; with OpenBLAS's default of a thread per core, a module after a few others ran
# up to 12x slower (the GP strategy's L-BFGS-B: 2.7 s alone, 33.7 s after three unrelated
# modules; 2.7 s with this), as scikit-learn advises for parallel processes.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The test processes run torch themselves beside the other xdist worker and the stacks: the
# policy loopml gives every process it starts (automl_tasks/core/shared_cores.py); without it
# the unit adaptation module took 82 s of a full run of the suite, with it 21 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

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
#: the test modules under it start or use a real Airflow stack
E2E_PREFIX = "tests/e2e/"


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


#: end-to-end modules that start their own stack (not the shared one): scopes of their own,
#: longest first (distributed_celery ~320 s, stack_supervision ~130 s, distributed_postgres
#: ~65 s in a full run), queued right after the shared stack's scope, so the other worker
#: runs them while the shared stack's tests run and the many short unit-test scopes fill the
#: end of both workers' queues (longest jobs first). Queued last, as they were, the longest
#: of them started after the unit tests and one worker idled for its last ~80 s.
STANDALONE_E2E = (
    "tests/e2e/test_distributed_celery.py",
    "tests/e2e/test_stack_supervision.py",
    "tests/e2e/test_distributed_postgres.py",
)


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def test_group(nodeid: str) -> str:
    """The xdist scope of a test: every test on the shared Airflow stack in one, run one
    after another on one worker (one shared stack, as without xdist), and every other module
    its own, so a module-scoped fixture (a BentoML server, a fitted family, a stack of its
    own) is built once, on one worker."""
    shared = nodeid.startswith(E2E_PREFIX) and _module(nodeid) not in STANDALONE_E2E
    return "airflow-stacks" if shared else _module(nodeid)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the scopes for `make test`'s scheduler: the shared stack's tests first (the
    longest chain), the standalone end-to-end modules next, longest first, then the rest as
    collected (see `STANDALONE_E2E`)."""

    def rank(item: pytest.Item) -> tuple[int, int]:
        module = _module(item.nodeid)
        if module in STANDALONE_E2E:
            return 1, STANDALONE_E2E.index(module)
        return (0 if item.nodeid.startswith(E2E_PREFIX) else 2), 0

    items.sort(key=rank)  # stable: the order within each group is kept


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`make test`'s scheduler: xdist's scope scheduling with `test_group` as the scope.

    Written here because xdist 3.8's `--dist loadgroup` marks a group by appending to
    `item._nodeid`, which pytest 9 no longer reads (the groups were silently ignored)."""
    from xdist.scheduler import LoadScopeScheduling

    class StackGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return test_group(nodeid)

    # keep the collection's order of scopes (pytest_collection_modifyitems), not xdist's
    # default of the scopes with the most tests first
    config.option.loadscopereorder = False
    return StackGroupScheduling(config, log)


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
