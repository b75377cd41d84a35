"""An exclusive lock that every process of a workspace honours, on one machine or many.

Where the workspace's stores are PostgreSQL (distributed mode: the registry's database, or
behind MLflow's tracking server the search's) it is a PostgreSQL session advisory lock; in
the embedded mode (one machine) an `fcntl` lock on a file of the workspace. Either is
released when its holder dies, so a killed holder never blocks the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from automl_tasks.core.file_lock import acquired_within, file_lock
from automl_tasks.core.settings import Workspace
from automl_tasks.core.store_urls import advisory_key, database_url, is_postgres


@contextlib.contextmanager
def postgres_advisory_lock(url: str, name: str, *, wait_s: float | None = None) -> Iterator[bool]:
    """Hold PostgreSQL's session advisory lock `name` on the database at `url`; yields whether
    it is held. Without `wait_s` it waits as long as the holder keeps it; with it, up to
    `wait_s` seconds, then the block runs without the lock (False)."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    key = advisory_key(name)
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if wait_s is None:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
                held = True
            else:
                ask = sqlalchemy.text("SELECT pg_try_advisory_lock(:key)")
                held = acquired_within(lambda: bool(conn.execute(ask, {"key": key}).scalar()), wait_s)
            conn.commit()  # the lock belongs to the session, not to a transaction
            try:
                yield held
            finally:
                if held:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()
    finally:
        engine.dispose()


@contextlib.contextmanager
def shared_lock(ws: Workspace, name: str, file_name: str, *, wait_s: float | None = None) -> Iterator[bool]:
    """Hold the workspace-wide lock `name` (the file `locks/<file_name>` in the embedded mode);
    yields whether it is held (always, without `wait_s`; see `postgres_advisory_lock`)."""
    shared = next((database_url(url) for url in (ws.mlflow_uri, ws.optuna_uri) if is_postgres(url)), None)
    if shared is not None:
        with postgres_advisory_lock(shared, name, wait_s=wait_s) as held:
            yield held
        return
    with file_lock(ws.home / "locks" / file_name, wait_s=wait_s) as held:
        yield held
