"""Progress lines for task logs: trial k of n, best so far, elapsed, ETA."""

from __future__ import annotations

import time


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class Progress:
    """ETA from the rate of finished trials, bounded by the time budget's deadline."""

    def __init__(self, total: int, deadline: float) -> None:
        self.total = total
        self.deadline = deadline
        self.started = time.time()

    def line(self, done: int, best: float | None, best_trial: int | None, prefix: str = "") -> str:
        elapsed = time.time() - self.started
        rate = done / elapsed if elapsed > 0 and done else 0.0
        remaining = (self.total - done) / rate if rate else float("inf")
        eta = min(remaining, max(0.0, self.deadline - time.time()))
        best_text = f"best {best:.5g} (trial {best_trial})" if best is not None else "best -"
        return (
            f"{prefix}trial {done} of {self.total} done | {best_text} | "
            f"elapsed {format_duration(elapsed)} | ETA {format_duration(eta)}"
        )
