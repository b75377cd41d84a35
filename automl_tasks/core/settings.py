"""The workspace: one folder that holds every store of the embedded mode.

A `Workspace` (with its `SearchSettings`) is created once at the edge (CLI, operator)
from the environment and passed down; library code never reads environment variables
itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from automl_tasks.core.shared_cores import shared_cores_env
from automl_tasks.core.store_urls import JOURNAL_PREFIX

DEFAULT_HOME = ".loopml"


@dataclass(frozen=True)
class SearchSettings:
    """How search workers and the job estimator watch each other.

    A running trial's worker beats a heartbeat every `heartbeat_interval_s`; after
    `heartbeat_grace_s` without a beat the job estimator fails the trial (its worker died).
    Environment: LOOPML_HEARTBEAT_S, LOOPML_HEARTBEAT_GRACE_S.
    """

    heartbeat_interval_s: int = 5
    heartbeat_grace_s: int = 20

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SearchSettings:
        env = os.environ if environ is None else environ
        return cls(
            heartbeat_interval_s=int(env.get("LOOPML_HEARTBEAT_S", cls.heartbeat_interval_s)),
            heartbeat_grace_s=int(env.get("LOOPML_HEARTBEAT_GRACE_S", cls.heartbeat_grace_s)),
        )

    def env(self) -> dict[str, str]:
        """The variables that give a child process these settings."""
        return {
            "LOOPML_HEARTBEAT_S": str(self.heartbeat_interval_s),
            "LOOPML_HEARTBEAT_GRACE_S": str(self.heartbeat_grace_s),
        }


def _optuna_uri(root: Path) -> str:
    """The embedded Optuna storage: Optuna's journal in a file (search/journal.py says why),
    or the SQLite database of a workspace made before loopml kept the journal (its studies stay)."""
    legacy = root / "optuna" / "optuna.db"
    if legacy.exists():
        return f"sqlite:///{legacy}"
    return f"{JOURNAL_PREFIX}file://{root / 'optuna' / 'optuna.journal'}"


@dataclass(frozen=True)
class Workspace:
    """Paths and store URIs of one loopml workspace.

    `mlflow_uri` defaults to a SQLite file and `optuna_uri` to Optuna's journal file inside
    the workspace (embedded mode); the distributed mode overrides them with PostgreSQL URLs (or MLflow's
    tracking server), `dvc_remote_url` names the datasets' DVC remote that every machine
    reaches (default: a folder in the workspace) and `inference_log_uri` the PostgreSQL
    database of the serving inference log (default: SQLite files in the workspace).
    """

    home: Path
    mlflow_uri: str
    optuna_uri: str
    search: SearchSettings = field(default_factory=SearchSettings)
    dvc_remote_url: str = ""
    #: the serving inference log's PostgreSQL URL (distributed mode); "": a SQLite file per family
    inference_log_uri: str = ""

    @classmethod
    def at(cls, home: str | os.PathLike[str]) -> Workspace:
        """The embedded-mode workspace rooted at `home` (made absolute)."""
        root = Path(home).expanduser().resolve()
        return cls(home=root, mlflow_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", optuna_uri=_optuna_uri(root))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Workspace:
        """Read `LOOPML_HOME` (default ./.loopml), optional store URL overrides and the search settings."""
        env = os.environ if environ is None else environ
        ws = cls.at(env.get("LOOPML_HOME", DEFAULT_HOME))
        return cls(
            home=ws.home,
            mlflow_uri=env.get("LOOPML_MLFLOW_URI", ws.mlflow_uri),
            optuna_uri=env.get("LOOPML_OPTUNA_URI", ws.optuna_uri),
            search=SearchSettings.from_env(env),
            dvc_remote_url=env.get("LOOPML_DVC_REMOTE", ""),
            inference_log_uri=env.get("LOOPML_INFERENCE_LOG_URI", ""),
        )

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def datasets(self) -> Path:
        """The DVC repository that holds every accepted dataset version."""
        return self.home / "datasets"

    @property
    def dvc_remote(self) -> Path | str:
        """The datasets' DVC remote: `dvc_remote_url` (any DVC remote URL), else a workspace folder."""
        return self.dvc_remote_url or self.home / "dvc-remote"

    @property
    def bentoml_home(self) -> Path:
        return self.home / "bentoml"

    @property
    def runs(self) -> Path:
        """Scratch space for per-run files (plots, exported models) before logging."""
        return self.home / "runs"

    def ensure(self) -> Workspace:
        """Create the workspace folders (idempotent; never deletes anything)."""
        for path in (
            self.home,
            self.airflow_home,
            self.mlflow_artifacts,
            self.home / "optuna",
            self.datasets,
            *([] if self.dvc_remote_url else [self.home / "dvc-remote"]),
            self.bentoml_home,
            self.runs,
        ):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def env(self) -> dict[str, str]:
        """Environment variables that point child processes at this workspace (and have them
        share the cores: `shared_cores`)."""
        return {
            "LOOPML_HOME": str(self.home),
            "LOOPML_MLFLOW_URI": self.mlflow_uri,
            "LOOPML_OPTUNA_URI": self.optuna_uri,
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "MLFLOW_REGISTRY_URI": self.mlflow_uri,
            # MLflow's own log handler and download progress bars write to stderr, which Airflow's
            # task logs show as errors: its records go through the process's logging instead
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),
            "MLFLOW_CONFIGURE_LOGGING": os.environ.get("MLFLOW_CONFIGURE_LOGGING", "false"),
            **({"LOOPML_DVC_REMOTE": self.dvc_remote_url} if self.dvc_remote_url else {}),
            **({"LOOPML_INFERENCE_LOG_URI": self.inference_log_uri} if self.inference_log_uri else {}),
            "BENTOML_HOME": str(self.bentoml_home),
            **self.search.env(),
            **shared_cores_env(os.environ),
        }
