"""Run functions in threads of their own and fail loudly when any of them fails."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence


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
