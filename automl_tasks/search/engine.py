"""The search engine without Airflow: any objective, any strategy, N worker threads.

Benchmarks (NAS-Bench-201 lookups, synthetic functions) and notebooks use it directly;
the Airflow pipelines run the same strategies through `run_worker` on a shared study.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from automl_tasks.core.errors import TrialEnded, TrialFailed, TrialPruned
from automl_tasks.core.threads import run_in_threads
from automl_tasks.search.progress import Progress
from automl_tasks.search.strategies import SearchStrategy, Task
from automl_tasks.search_space import SearchSpace

log = logging.getLogger(__name__)


#: objective(config, report) -> value or values; report(value, step) raises TrialPruned when told to stop
Objective = Callable[[dict[str, Any], Callable[[float, int], None]], float | Sequence[float]]


def optimize(
    objective: Objective,
    space: SearchSpace,
    strategy: SearchStrategy,
    *,
    n_trials: int,
    directions: Sequence[str] = ("maximize",),
    n_workers: int = 1,
    storage: Any = None,
    study_name: str | None = None,
    progress_every: int = 0,
) -> Any:  # optuna.Study
    """Run `n_trials` trials of `objective` with `strategy`; return the Optuna study.

    A failing configuration fails its trial, not the search. `progress_every` > 0 logs a
    progress line (trial k of n, best so far, ETA) every that many trials."""
    import optuna

    if len(directions) > 1 and not (strategy.multi_objective or strategy.several_objectives):
        raise ValueError(f"strategy {strategy.name} optimises one objective; {len(directions)} given")
    strategy.bind_space(space)
    study = optuna.create_study(
        directions=list(directions),
        sampler=strategy.sampler(),
        pruner=strategy.pruner(),
        storage=storage,
        study_name=study_name,
    )
    strategy.prepare(study)
    lock = threading.Lock()
    started = [0]
    progress = Progress(n_trials, deadline=time.time() + 10**9)

    def take_slot() -> bool:
        with lock:
            if started[0] >= n_trials:
                return False
            started[0] += 1
            return True

    def work() -> None:
        while take_slot():
            with lock:
                task = strategy.generate_tasks(study, 1)[0]
            _evaluate(objective, strategy, study, task, lock)
            done = task.number + 1
            if progress_every and done % progress_every == 0 and len(directions) == 1:
                best = _best(study)
                log.info("%s", progress.line(done, *best, prefix=f"[{strategy.name}] "))

    # a broken strategy must stop the search loudly, not a thread quietly
    run_in_threads([work] * n_workers, name="search-worker")
    return study


def _evaluate(objective: Objective, strategy: SearchStrategy, study: Any, task: Task, lock: threading.Lock) -> None:
    def report(value: float, step: int) -> None:
        with lock:
            stop = strategy.report(task, value, step)
        if stop:
            raise TrialPruned(f"trial {task.number} stopped at step {step}")

    values: Any = None
    ended: TrialEnded | None = None
    try:
        values = objective(task.config, report)
    except TrialPruned as exc:
        ended = exc
    except Exception as exc:  # a failing configuration fails its trial, not the search
        ended = TrialFailed(f"{type(exc).__name__}: {exc}")
        log.warning("trial %d failed: %s", task.number, ended)
    with lock:
        strategy.handle_rewards(study, task, values, ended)


def _best(study: Any) -> tuple[float | None, int | None]:
    try:
        return study.best_value, study.best_trial.number
    except ValueError:
        return None, None
