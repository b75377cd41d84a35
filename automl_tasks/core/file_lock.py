"""An exclusive lock between the processes of one machine: `fcntl.flock` on a file."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: how often a bounded wait asks again for a lock another process holds
POLL_S = 0.2


@contextlib.contextmanager
def file_lock(path: Path, *, wait_s: float | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (created with its folder) until the block ends; yields
    whether it is held. Another process asking for it waits: as long as it takes, or with
    `wait_s` up to that many seconds, after which its block runs without the lock (False).
    Machine-local: for state every machine keeps for itself."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if wait_s is None:
            fcntl.flock(handle, fcntl.LOCK_EX)
            held = True
        else:
            held = acquired_within(lambda: _try_lock(handle), wait_s)
        try:
            yield held
        finally:
            if held:
                fcntl.flock(handle, fcntl.LOCK_UN)


def acquired_within(try_lock: Callable[[], bool], wait_s: float) -> bool:
    """Ask `try_lock` (one non-blocking attempt) every `POLL_S` until it succeeds or `wait_s`
    seconds have passed; whether it succeeded. The bounded wait of every lock here."""
    deadline = time.monotonic() + wait_s
    while not (held := try_lock()) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return held


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
