"""Shared fixtures: a fresh workspace per test and small tables written to disk."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from automl_tasks.settings import Workspace


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
