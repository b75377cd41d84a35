"""CPU a task process spends before its own work: opening MLflow's and Optuna's stores.

Airflow forks each task from a process that preloaded loopml's task libraries
(loopml/task_preload.py). This script does the same: it preloads (the list as committed, or
none with `--no-preload`), then forks one child per step and prints the CPU seconds the
child spent on the step's first call and on a second one (the second is the work itself;
the difference is what the first call imported or set up). The model log is timed as a
task estimator logs a version (pinned pip requirements, which MLflow checks against the
installed packages).

    python benchmarks/task_start_cost.py [--no-preload | --no-warm]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from automl_tasks.core.settings import Workspace


def _in_fork(label: str, step: Callable[[], None]) -> None:
    pid = os.fork()
    if pid == 0:
        started = time.process_time()
        step()
        first = time.process_time() - started
        step()
        again = time.process_time() - started - first
        print(f"{label:34s} first call {first:6.3f} CPU-s, again {again:6.3f} CPU-s", flush=True)
        os._exit(0)
    os.waitpid(pid, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-preload", action="store_true", help="fork from a process that preloaded nothing")
    parser.add_argument(
        "--no-warm", action="store_true", help="preload the modules but not MLflow's map of installed packages"
    )
    args = parser.parse_args()
    logging.disable(logging.INFO)
    ws = Workspace.at(Path(tempfile.mkdtemp(prefix="loopml-task-start-")) / "ws").ensure()
    # the stores' databases exist before the measured process starts, as on a running stack
    create = (
        "from mlflow import MlflowClient; from automl_tasks.search.storage import open_storage; "
        f"MlflowClient(tracking_uri={ws.mlflow_uri!r}, registry_uri={ws.mlflow_uri!r}).search_experiments(); "
        f"open_storage({ws.optuna_uri!r})"
    )
    subprocess.run([sys.executable, "-c", create], check=True, capture_output=True)
    if not args.no_preload:
        import loopml.task_preload
        from loopml.task_preload import preload

        if args.no_warm:
            loopml.task_preload.warm_mlflow_requirements_check = lambda: None
        started = time.perf_counter()
        preload()
        print(f"preload: {time.perf_counter() - started:.1f} s in the forking process (once)")

    def open_mlflow() -> None:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=ws.mlflow_uri, registry_uri=ws.mlflow_uri).search_experiments()

    def open_optuna() -> None:
        from automl_tasks.search.storage import open_storage

        open_storage(ws.optuna_uri).get_all_studies()

    def log_model() -> None:  # as registration.log_version logs a version: pinned requirements
        import mlflow
        import mlflow.sklearn
        from sklearn.linear_model import LogisticRegression

        from automl_tasks.pipelines.registration import _pip_requirements

        mlflow.set_tracking_uri(ws.mlflow_uri)
        with mlflow.start_run():
            model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
            mlflow.sklearn.log_model(
                model, name="model", pip_requirements=_pip_requirements(), serialization_format="cloudpickle"
            )

    _in_fork("MLflow client + one query", open_mlflow)
    _in_fork("MLflow model log (requirements check)", log_model)
    _in_fork("Optuna storage (the workspace's journal) + one query", open_optuna)


if __name__ == "__main__":
    main()
