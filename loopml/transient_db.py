"""Retry an Airflow API call that failed on a transient metadata-database error.

In the embedded mode Airflow's metadata DB is SQLite: one writer at a time. When the
scheduler, a task and the api-server write at the same moment, a write in the api-server
can fail at once with "database is locked" (in WAL mode a transaction that read before
another one committed cannot upgrade to a write, whatever the busy timeout), and the
API answers `500 {"reason": "Database error"}`. The transaction was rolled back, so an
idempotent call (GET, PATCH of a flag, a trigger with our own run id) can simply be
repeated. Anything else, and the same error past the retry budget, goes to the caller.
Measured and chosen over an embedded PostgreSQL in docs/DESIGN.md ("Embedded metadata DB").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: what the API answers (the reason of Airflow's SQLAlchemy error handler) or SQLite says
TRANSIENT_MARKERS = ("Database error", "database is locked", "database table is locked")
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def is_transient_db_error(exc: BaseException) -> bool:
    """True for a 500 whose body says the metadata database failed (not for a 4xx or other 5xx)."""
    status = getattr(exc, "status", None)
    text = str(exc)
    is_500 = status == 500 or (status is None and " -> 500" in text)
    return is_500 and any(marker in text for marker in TRANSIENT_MARKERS)


def retry_transient_db(
    call: Callable[[], T],
    *,
    delays_s: tuple[float, ...] = RETRY_DELAYS_S,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """`call()`, repeated after each delay while it fails with a transient database error.

    Only for idempotent calls: the caller promises that repeating it is harmless.
    """
    for delay in delays_s:
        try:
            return call()
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            if on_retry:
                on_retry(exc, delay)
            time.sleep(delay)
    return call()
