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


def test_a_task_opens_mlflows_and_optunas_stores_without_importing_them(tmp_path):
    """Every task opens MLflow's and Optuna's stores first; without their SQL stores in the
    preload, each task process imported them again (about 3 s of CPU a task). Checked in a
    fresh process: the list's MLflow and Optuna entries (and loopml's journal storage)
    preloaded, then both stores opened and queried as a task opens them, which must import no
    module of MLflow, Optuna, SQLAlchemy or Alembic."""
    ws = Workspace.at(tmp_path / "ws").ensure()
    roots = ("mlflow", "optuna", "sqlalchemy", "alembic")
    stores = tuple(
        name for name in PRELOADED_MODULES if name.split(".")[0] in roots or name == "automl_tasks.search.journal"
    )
    create = (  # the databases exist before the task starts, as on a running stack
        "from mlflow import MlflowClient; from automl_tasks.search.storage import open_storage\n"
        f"MlflowClient(tracking_uri={ws.mlflow_uri!r}, registry_uri={ws.mlflow_uri!r}).search_experiments()\n"
        f"open_storage({ws.optuna_uri!r})\n"
    )
    subprocess.run([sys.executable, "-c", create], capture_output=True, text=True, timeout=120, check=True)
    probe = (
        "import sys\n"
        "from loopml.task_preload import preload\n"
        f"assert preload({stores!r}) == []\n"
        "before = set(sys.modules)\n"
        "from mlflow import MlflowClient; from automl_tasks.search.storage import open_storage\n"
        f"MlflowClient(tracking_uri={ws.mlflow_uri!r}, registry_uri={ws.mlflow_uri!r}).search_experiments()\n"
        f"open_storage({ws.optuna_uri!r}).get_all_studies()\n"
        "import re\n"
        f"roots = {roots!r}\n"
        # MLflow loads a few small schema scripts by file, named after their revision each time
        "new = [m for m in set(sys.modules) - before if m.split('.')[0] in roots and not re.search('_[0-9a-f]{12}$', m)]\n"
        "print(sorted(new))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.splitlines()[-1] == "[]", out.stdout + out.stderr


def test_a_handler_made_at_preload_writes_to_the_task_processs_stream_not_the_closed_one():
    """A library's handler for `sys.stderr`, made while the preload imports it, must log to
    the stream the task process has when it logs, even after the old one was closed (a Celery
    task process's case). Checked in a fresh process."""
    probe = (
        "import io, logging, sys, types\n"
        "from loopml.task_preload import preload\n"
        "old = sys.stderr = io.StringIO()\n"
        "module = types.ModuleType('library_with_a_handler')\n"
        "exec(\"import logging, sys\\nlogger = logging.getLogger('library_with_a_handler')\\n"
        'logger.addHandler(logging.StreamHandler(sys.stderr))\\nlogger.propagate = False", module.__dict__)\n'
        "sys.modules['library_with_a_handler'] = module\n"
        "preload(('library_with_a_handler',))\n"
        "old.close(); sys.stderr = new = io.StringIO()\n"
        "logging.raiseExceptions = True\n"
        "module.logger.warning('written by the task')\n"
        "print(repr(new.getvalue()))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.splitlines()[-1] == repr("written by the task\n"), out.stdout + out.stderr


def test_a_task_logs_a_model_without_scanning_the_installed_packages(tmp_path):
    """MLflow checks a logged model's pip requirements against the installed packages; its
    first check in a process scans every installed distribution (1.9 s, paid by each task
    estimator before the preload warmed it). Checked in a fresh process: after the warm-up, a
    model logged as `registration.log_version` logs it (pinned requirements) must not scan."""
    probe = (
        "import mlflow, mlflow.sklearn, importlib_metadata\n"
        "from mlflow.utils import requirements_utils\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from loopml.task_preload import warm_mlflow_requirements_check\n"
        "from automl_tasks.pipelines.registration import _pip_requirements\n"
        "warm_mlflow_requirements_check()\n"
        "scans = []\n"
        "scan = importlib_metadata.packages_distributions\n"
        "requirements_utils.importlib_metadata.packages_distributions = lambda: scans.append(1) or scan()\n"
        f"mlflow.set_tracking_uri('sqlite:///{tmp_path}/mlflow.db')\n"
        f"experiment = mlflow.create_experiment('probe', artifact_location='{tmp_path}/artifacts')\n"
        "with mlflow.start_run(experiment_id=experiment):\n"
        "    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])\n"
        "    mlflow.sklearn.log_model(model, name='model', pip_requirements=_pip_requirements(['scikit-learn']),\n"
        "                             serialization_format='cloudpickle')\n"
        "print('scans', len(scans))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.splitlines()[-1] == "scans 0", out.stdout + out.stderr
