"""What every contract check shares."""

from __future__ import annotations


def require(condition: bool, message: str) -> None:
    """Raise AssertionError(message) unless `condition` (checks must also run under `python -O`)."""
    if not condition:
        raise AssertionError(message)
