"""Stopping the server processes loopml starts, including what they spawned in other sessions.

BentoML's process manager starts its workers in sessions of their own, so signalling a
process group is not enough: the whole tree is collected first, then stopped.
"""

from __future__ import annotations

import psutil


def stop_tree(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM `pid` and all its descendants, SIGKILL whatever is left after `timeout_s`."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = [root]
    terminate(tree, timeout_s)


def terminate(processes: list[psutil.Process], timeout_s: float) -> None:
    """SIGTERM `processes`, SIGKILL those still alive after `timeout_s`; gone ones are skipped."""
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    kill(alive)


def kill(processes: list[psutil.Process]) -> None:
    """SIGKILL `processes` at once and reap them; gone ones are skipped."""
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=5)


def alive(pid: int) -> bool:
    """True for a running process (a zombie counts as dead)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
