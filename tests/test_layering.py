"""The import layering of ARCHITECTURE.md, checked by import-linter's contracts in pyproject."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


ROOT_PACKAGES = ("automl_tasks", "loopml", "operators", "serving")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    out = _lint_imports(REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        # a package-level cycle (estimators <-> algorithms) that also breaks the layers
        ("automl_tasks/estimators/metrics.py", "import automl_tasks.algorithms", 2),
        # a module-level cycle inside loopml (cli imports dag_runs already)
        ("loopml/dag_runs.py", "import loopml.cli", 1),
    ],
)
def test_the_contracts_catch_a_planted_cycle(tmp_path, module, planted, broken):
    for package in ROOT_PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a") as f:
        f.write(f"\n{planted}  # planted cycle\n")
    out = _lint_imports(tmp_path)
    assert out.returncode == 1, out.stdout[-3000:]
    assert f"Contracts: {4 - broken} kept, {broken} broken" in out.stdout, out.stdout[-3000:]
    assert "no import cycles between sibling modules or packages BROKEN" in out.stdout


def test_automl_tasks_has_no_airflow_import_in_source():
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "automl_tasks").rglob("*.py")
        if any(line.lstrip().startswith(("import airflow", "from airflow")) for line in p.read_text().splitlines())
    ]
    assert offenders == []
