"""The import layering of ARCHITECTURE.md, checked by import-linter's contracts in pyproject."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken" in out.stdout


def test_automl_tasks_has_no_airflow_import_in_source():
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "automl_tasks").rglob("*.py")
        if any(line.lstrip().startswith(("import airflow", "from airflow")) for line in p.read_text().splitlines())
    ]
    assert offenders == []
