"""loopml's task libraries, imported once in a process that forks task processes.

Airflow forks every task process, from a LocalExecutor worker in the embedded mode and from
a Celery pool process in the distributed mode. Without a preload, every task imports MLflow,
pandas, scikit-learn, Great Expectations, ONNX and Airflow's task runner itself, 1-4 s of CPU
per task and about half of a short NoCode run's wall time (docs/BENCHMARKS.md, "NoCode
orchestration overhead"). Imported before the fork, they are shared copy-on-write.
"""

from __future__ import annotations

import importlib
import logging
import time

log = logging.getLogger(__name__)

#: What loopml's tasks import (operators import them inside the task functions, so DAG
#: files parse fast), plus the libraries those modules load lazily in the common path.
#: torch is left out: only neural-network trials use it, and it is the largest import.
PRELOADED_MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "automl_tasks.pipelines.intake",
    "automl_tasks.pipelines.nocode",
    "automl_tasks.pipelines.hpo",
    "automl_tasks.pipelines.retrain",
    "automl_tasks.pipelines.registration",
    "automl_tasks.pipelines.advisor",
    "automl_tasks.search",
    "automl_tasks.monitoring.drift_check",
    "automl_tasks.families.promotion",
    "automl_tasks.families.batch_inference",
    "great_expectations",
    "lightgbm",
    "skl2onnx",
    "onnxruntime",
)


def preload(modules: tuple[str, ...] | None = None) -> list[str]:
    """Import `modules` (`PRELOADED_MODULES` when None); return the ones that failed (a task
    importing one reports the real error)."""
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
    log.info("loopml preload: %d modules in %.1fs", len(modules) - len(failed), time.perf_counter() - started)
    return failed
