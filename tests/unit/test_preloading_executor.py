"""The embedded stack's executor preloads loopml's task libraries before forking its workers."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from automl_tasks.core.settings import Workspace
from loopml.embedded import airflow_env
from loopml.preloading_executor import PreloadingLocalExecutor
from loopml.task_preload import PRELOADED_MODULES, preload


def test_the_embedded_stack_runs_the_preloading_executor(tmp_path):
    env = airflow_env(Workspace.at(tmp_path / "ws").ensure(), port=18999)
    module, _, name = env["AIRFLOW__CORE__EXECUTOR"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is PreloadingLocalExecutor


def test_every_preloaded_module_exists_so_a_rename_cannot_silently_undo_the_preload():
    missing = [name for name in PRELOADED_MODULES if importlib.util.find_spec(name) is None]
    assert missing == []


def test_a_module_that_fails_to_import_is_reported_not_raised():
    assert preload(("json", "loopml_no_such_module")) == ["loopml_no_such_module"]


def test_celery_workers_get_airflow_celery_defaults_and_the_preload(tmp_path):
    """The distributed profile names loopml's Celery configuration: Airflow's defaults (the
    broker from the profile) plus a receiver of Celery's `import_modules` signal, which the
    worker sends before forking its pool. Sending it imports the task libraries; importing
    the configuration alone (as the scheduler does) imports none of them."""
    from automl_tasks.core.profile import DeploymentProfile
    from loopml.embedded import celery_env

    profile = DeploymentProfile.from_env(
        {
            "LOOPML_HOME": str(tmp_path / "ws"),
            "LOOPML_EXECUTOR": "celery",
            "LOOPML_AIRFLOW_DB_URI": "postgresql+psycopg2://u:p@127.0.0.1:5432/airflow",
            "LOOPML_OPTUNA_URI": "postgresql+psycopg2://u:p@127.0.0.1:5432/optuna",
            "LOOPML_MLFLOW_URI": "http://127.0.0.1:5000",
            "LOOPML_BROKER_URL": "redis://127.0.0.1:6379/0",
        }
    )
    setting = celery_env(profile)["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"]
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    module, _, name = setting.rpartition(".")
    assert getattr(importlib.import_module(module), name) == DEFAULT_CELERY_CONFIG
    probe = (  # two light modules stand in for the list (importing it all takes seconds)
        "import sys\n"
        f"import {module}\n"
        "import loopml.task_preload as preload; preload.PRELOADED_MODULES = ('tabnanny', 'pyclbr')\n"
        "before = 'tabnanny' in sys.modules or 'pyclbr' in sys.modules or 'automl_tasks.search' in sys.modules\n"
        "from celery.signals import import_modules; import_modules.send(sender=None)\n"
        "print(before, 'tabnanny' in sys.modules and 'pyclbr' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.splitlines()[-1].split() == ["False", "True"], out.stdout + out.stderr
