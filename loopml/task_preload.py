"""loopml's task libraries, imported once in a process that forks task processes.

Airflow forks every task process, from a LocalExecutor worker in the embedded mode and from
a Celery pool process in the distributed mode. Without a preload, every task imports MLflow,
pandas, scikit-learn, Great Expectations, ONNX and Airflow's task runner itself, 1-4 s of CPU
per task and about half of a short NoCode run's wall time (docs/BENCHMARKS.md, "NoCode
orchestration overhead"). Imported before the fork, they are shared copy-on-write.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import time

log = logging.getLogger(__name__)

#: What loopml's tasks import (operators import them inside the task functions, so DAG
#: files parse fast), plus the libraries those modules load lazily in the common path:
#: MLflow's and Optuna's SQL stores are imported by the first store a task opens (about
#: 3 s of CPU per task process without them: benchmarks/task_start_cost.py), Evidently by
#: every drift check, and the trust report's attack library (ART, which imports torch: 2.3 s
#: of a classification run's task estimator without the preload; torch is imported, not
#: used, so no thread pool exists when the workers fork). DVC is left out (a small import):
#: its logging handler writes to the stream the importing process had, which a Celery task
#: process has closed.
PRELOADED_MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "alembic.command",
    "alembic.config",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "optuna.storages",
    "optuna.storages._rdb.models",
    "optuna.visualization",
    "optuna.importance",
    "evidently.presets",
    "evidently.metrics",
    "automl_tasks.pipelines.intake",
    "automl_tasks.pipelines.nocode",
    "automl_tasks.pipelines.hpo",
    "automl_tasks.pipelines.retrain",
    "automl_tasks.pipelines.registration",
    "automl_tasks.pipelines.advisor",
    "automl_tasks.search",
    "automl_tasks.search.journal",
    "automl_tasks.monitoring.drift_check",
    "automl_tasks.families.promotion",
    "automl_tasks.families.batch_inference",
    "great_expectations",
    "lightgbm",
    "skl2onnx",
    "onnxruntime",
    "torch",
    "art.attacks.evasion",
    "art.estimators.classification",
)


def warm_mlflow_requirements_check() -> None:
    """Build MLflow's map of installed packages, which it fills on a process's first model
    log or load to check the model's pip requirements against what is installed: a scan of
    every installed distribution's file list (1.9 s here, `benchmarks/task_start_cost.py`),
    paid by each task estimator before its registration when left to the task. Private API
    of MLflow's, so a failure only leaves the scan to the tasks."""
    from mlflow.utils.requirements_utils import _init_packages_to_modules_map

    _init_packages_to_modules_map()


def preload(modules: tuple[str, ...] | None = None) -> list[str]:
    """Import `modules` (`PRELOADED_MODULES` when None, then also warm what those modules
    set up on first use: `warm_mlflow_requirements_check`); return the ones that failed (a
    task importing one reports the real error)."""
    warm = modules is None
    modules = PRELOADED_MODULES if modules is None else modules
    started, failed = time.perf_counter(), []
    # Great Expectations logs one INFO line per decorated closure while it imports
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # never stop a scheduler or a worker for an optimisation
            failed.append(name)
            log.warning("loopml preload: could not import %s (%s); tasks will import it themselves", name, exc)
    if warm:
        try:
            warm_mlflow_requirements_check()
        except Exception as exc:  # never stop a scheduler or a worker for an optimisation
            log.warning("loopml preload: could not warm MLflow's requirements check (%s)", exc)
    follow_current_streams()
    log.info("loopml preload: %d modules in %.1fs", len(modules) - len(failed), time.perf_counter() - started)
    return failed


class CurrentStream:
    """`sys.stdout` or `sys.stderr` as they are when written to, not when a handler was made."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def follow_current_streams() -> None:
    """Point every logging handler that writes to this process's stdout or stderr at whatever
    those are when it writes. Libraries (Optuna among them) make a handler for `sys.stderr` at
    import; preloaded, that is the forking process's stream, which a task process may have
    replaced and closed (a Celery pool process does): the task would then fail on its first
    log line instead of logging it."""
    standard = {id(sys.stdout): "stdout", id(sys.stderr): "stderr"}
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and id(stream) in standard:
                with contextlib.suppress(AttributeError):  # a handler whose stream is fixed (logging's last resort)
                    handler.setStream(CurrentStream(standard[id(stream)]))
