"""Which database a store URL names, whatever layout the store keeps in it.

The search's Optuna storage can be Optuna's journal (an append-only log of operations) kept
in a file or a PostgreSQL table; its URL is the database URL with `journal+` in front
(`journal+file:///path`, `journal+postgresql://host/db`). The other checks (is it
PostgreSQL? where is the server?) only need the database underneath.
"""

from __future__ import annotations

import hashlib

#: a store URL with this prefix keeps Optuna's journal at the URL that follows it
JOURNAL_PREFIX = "journal+"


def database_url(url: str) -> str:
    """The database (or file) URL under a store URL: `url` without the journal prefix."""
    return url.removeprefix(JOURNAL_PREFIX)


def is_postgres(url: str) -> bool:
    """Whether the store at `url` lives in PostgreSQL (the distributed mode's databases)."""
    return database_url(url).startswith("postgresql")


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks (`hash()` is salted per process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
