"""The embedded stack's executor: Airflow's LocalExecutor, with loopml's task libraries
imported once before its worker processes are forked.

Airflow 3's LocalExecutor forks its workers from the scheduler when it starts, and each
task process is forked from a worker. Without this, every task imports MLflow, pandas,
scikit-learn, Great Expectations, ONNX and Airflow's task runner itself, 1-4 s of CPU
per task and about half of a short NoCode run's wall time (docs/BENCHMARKS.md,
"NoCode orchestration overhead"). Imported here, they are shared copy-on-write by every
worker and task. Airflow has no setting for this (`parsing_pre_import_modules` serves
the dag-processor only), hence the subclass. It changes nothing else: the workers,
their process titles and the task supervision are the LocalExecutor's.
"""

from __future__ import annotations

import importlib
import logging
import time

from airflow.executors.local_executor import LocalExecutor

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


def preload(modules: tuple[str, ...] = PRELOADED_MODULES) -> list[str]:
    """Import `modules`; return the ones that failed (a task importing one reports the real error)."""
    started, failed = time.perf_counter(), []
    # Great Expectations logs one INFO line per decorated closure while it imports
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # never stop the scheduler for an optimisation
            failed.append(name)
            log.warning("loopml preload: could not import %s (%s); tasks will import it themselves", name, exc)
    log.info("loopml preload: %d modules in %.1fs", len(modules) - len(failed), time.perf_counter() - started)
    return failed


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose forked workers (and so every task) start with `PRELOADED_MODULES` loaded."""

    def start(self) -> None:
        if self.is_mp_using_fork:  # with spawn the workers would not inherit the imports
            preload()
        super().start()
