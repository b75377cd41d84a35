"""Run functions in threads of their own and fail loudly when any of them fails."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_in_threads(functions: Sequence[Callable[[], None]], *, name: str) -> None:
    """Start each function in its own thread, wait for all, then re-raise the first exception
    any of them raised in the caller's thread (a thread's exception would otherwise be printed
    and lost, and the work would look finished)."""
    errors: list[BaseException] = []

    def guarded(function: Callable[[], None]) -> None:
        try:
            function()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(f,), name=f"{name}-{i}") for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def map_in_threads(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`function` on every item in a pool of one thread per core, results in the items' order;
    the first exception is raised in the caller's thread. For work that releases the GIL
    (LightGBM, scikit-learn's tree builders, torch) on data the threads share without copying."""
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(function, items))
