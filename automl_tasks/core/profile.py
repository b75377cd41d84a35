"""The deployment profile: embedded (the default) or distributed, as one settings object.

The embedded mode runs every store in the workspace folder and Airflow's LocalExecutor on
one machine. The distributed mode is the same code with other settings: Airflow's Celery or
Kubernetes executor, PostgreSQL for every database, MLflow's tracking server (which proxies
artifacts) and a DVC remote every worker reaches. docs/DISTRIBUTED.md has the table of
settings; `problems()` says what is inconsistent before anything starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from automl_tasks.core.errors import ConfigurationError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.store_urls import is_postgres

EXECUTORS = ("local", "celery", "kubernetes")
DEFAULT_IMAGE = "loopml:latest"
DEFAULT_NAMESPACE = "default"
#: the environment variable of each setting (the error messages name them)
SETTING_ENV = {
    "executor": "LOOPML_EXECUTOR",
    "airflow_db_uri": "LOOPML_AIRFLOW_DB_URI",
    "broker_url": "LOOPML_BROKER_URL",
    "image": "LOOPML_IMAGE",
    "namespace": "LOOPML_NAMESPACE",
    "mlflow_uri": "LOOPML_MLFLOW_URI",
    "optuna_uri": "LOOPML_OPTUNA_URI",
    "dvc_remote_url": "LOOPML_DVC_REMOTE",
    "inference_log_uri": "LOOPML_INFERENCE_LOG_URI",
}


@dataclass(frozen=True)
class DeploymentProfile:
    """Which executor runs the tasks and where every store lives."""

    workspace: Workspace
    executor: str = "local"
    airflow_db_uri: str = ""  # "": SQLite in the workspace (embedded)
    broker_url: str = ""  # Celery's broker (redis://...), celery executor only
    image: str = DEFAULT_IMAGE  # the image of task and trial pods, kubernetes executor only
    namespace: str = DEFAULT_NAMESPACE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeploymentProfile:
        env = os.environ if environ is None else environ
        return cls(
            workspace=Workspace.from_env(env),
            executor=env.get(SETTING_ENV["executor"], "local").strip().lower() or "local",
            airflow_db_uri=env.get(SETTING_ENV["airflow_db_uri"], ""),
            broker_url=env.get(SETTING_ENV["broker_url"], ""),
            image=env.get(SETTING_ENV["image"], DEFAULT_IMAGE),
            namespace=env.get(SETTING_ENV["namespace"], DEFAULT_NAMESPACE),
        )

    @property
    def distributed(self) -> bool:
        return self.executor != "local"

    @property
    def trials_as_pods(self) -> bool:
        """Whether search workers run as KubernetesPodOperator pods with the algorithm's resources."""
        return self.executor == "kubernetes"

    def problems(self) -> list[str]:
        """What is inconsistent in these settings (each names its variable); [] when none."""
        found: list[str] = []
        if self.executor not in EXECUTORS:
            found.append(f"{SETTING_ENV['executor']}={self.executor!r}: expected one of {list(EXECUTORS)}")
            return found
        if not self.distributed:
            return found
        ws = self.workspace
        for key, url in (
            ("airflow_db_uri", self.airflow_db_uri),
            ("optuna_uri", ws.optuna_uri),
            ("inference_log_uri", ws.inference_log_uri),
        ):
            if not is_postgres(url):
                found.append(
                    f"{SETTING_ENV[key]}: the {self.executor} executor needs PostgreSQL (machines share it);"
                    f" got {url or 'unset (SQLite in the workspace)'}"
                )
        if not ws.mlflow_uri.startswith(("http://", "https://")):
            found.append(
                f"{SETTING_ENV['mlflow_uri']}: the {self.executor} executor needs MLflow's tracking server"
                f" (http://..., started with --serve-artifacts so no machine needs its disk); got {ws.mlflow_uri}"
            )
        if not ws.dvc_remote_url or "://" not in ws.dvc_remote_url:
            found.append(
                f"{SETTING_ENV['dvc_remote_url']}: the {self.executor} executor needs a DVC remote URL every"
                f" worker reaches (http://, s3://, ...); got {ws.dvc_remote_url or 'unset (a workspace folder)'}"
            )
        if self.executor == "celery" and not self.broker_url:
            found.append(f"{SETTING_ENV['broker_url']}: the celery executor needs a broker URL (redis://host:6379/0)")
        if self.executor == "kubernetes" and not self.image:
            found.append(f"{SETTING_ENV['image']}: the kubernetes executor needs the image of its pods")
        return found

    def check(self) -> DeploymentProfile:
        """These settings, or a ConfigurationError listing every problem."""
        problems = self.problems()
        if problems:
            raise ConfigurationError("deployment settings: " + "; ".join(problems))
        return self
