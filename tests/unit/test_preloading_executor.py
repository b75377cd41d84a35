"""The embedded stack's executor preloads loopml's task libraries before forking its workers."""

from __future__ import annotations

import importlib.util

from automl_tasks.core.settings import Workspace
from loopml.embedded import airflow_env
from loopml.preloading_executor import PRELOADED_MODULES, PreloadingLocalExecutor, preload


def test_the_embedded_stack_runs_the_preloading_executor(tmp_path):
    env = airflow_env(Workspace.at(tmp_path / "ws").ensure(), port=18999)
    module, _, name = env["AIRFLOW__CORE__EXECUTOR"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is PreloadingLocalExecutor


def test_every_preloaded_module_exists_so_a_rename_cannot_silently_undo_the_preload():
    missing = [name for name in PRELOADED_MODULES if importlib.util.find_spec(name) is None]
    assert missing == []


def test_a_module_that_fails_to_import_is_reported_not_raised():
    assert preload(("json", "loopml_no_such_module")) == ["loopml_no_such_module"]
