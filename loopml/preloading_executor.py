"""The embedded stack's executor: Airflow's LocalExecutor, with loopml's task libraries
imported once before its worker processes are forked.

Airflow 3's LocalExecutor forks its workers from the scheduler when it starts, and each
task process is forked from a worker: imported here, loopml's task libraries are shared by
every task (loopml/task_preload.py says what that saves). Airflow has no setting for this
(`parsing_pre_import_modules` serves the dag-processor only), hence the subclass. It changes
nothing else: the workers, their process titles and the task supervision are the
LocalExecutor's.
"""

from __future__ import annotations

from airflow.executors.local_executor import LocalExecutor

from loopml.task_preload import preload


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose forked workers (and so every task) start with loopml's task libraries loaded."""

    def start(self) -> None:
        if self.is_mp_using_fork:  # with spawn the workers would not inherit the imports
            preload()
        super().start()
