"""Optuna's journal storage for the search: a file (embedded mode) or a PostgreSQL table
(distributed mode), with the heartbeats loopml's dead-worker recovery needs.

Why the journal: Optuna's RDB storage runs about 18 ORM transactions a trial (reserve, each
parameter, each attribute, tell, and the listings around them): 20-40 ms of CPU a trial in
the worker, and most of the distributed mode's PostgreSQL load. The journal appends one
record per operation and replays the others' records in memory: 1-4 ms a trial
(benchmarks/worker_bookkeeping.py). Optuna ships the storage and a file backend; what it
lacks here is written below, each for a stated reason:

- `FlockJournalLock`: the file backend's default symlink lock, left behind by a killed
  holder, stalls every other process for its 30 s grace period; `flock` dies with its holder.
- `SnapshotFileBackend`: every process replays the whole journal when it opens it; Optuna's
  snapshot hook (which its Redis backend implements) lets it start from the last snapshot.
- `PostgresJournalBackend`: Optuna has no journal backend on a database; the distributed
  mode keeps every store in PostgreSQL.
- `HeartbeatJournalStorage`: Optuna's journal storage has no heartbeats; a beat is a trial
  system attribute (the time of the beating host, so hosts' clocks must agree to well within
  the grace period, as NTP keeps them).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend, JournalStorage
from optuna.storages.journal._base import BaseJournalSnapshot
from optuna.storages.journal._file import BaseJournalFileLock
from optuna.trial import TrialState

from automl_tasks.core.file_lock import file_lock
from automl_tasks.core.store_urls import JOURNAL_PREFIX, advisory_key, database_url, is_postgres
from automl_tasks.core.tags import HEARTBEAT_ATTR

#: the PostgreSQL tables of the journal and of its latest snapshot
JOURNAL_TABLE, SNAPSHOT_TABLE = "loopml_optuna_journal", "loopml_optuna_journal_snapshot"
#: a PostgreSQL connection idle for longer is checked before its next statement
PING_AFTER_IDLE_S = 10.0


class FlockJournalLock(BaseJournalFileLock):
    """`core/file_lock` (an exclusive `flock`) on `<journal>.lock`, behind Optuna's
    acquire/release interface: the kernel releases it when its holder dies."""

    def __init__(self, journal_path: str) -> None:
        self._path = Path(journal_path + ".lock")
        self._held = contextlib.ExitStack()

    def acquire(self) -> bool:
        self._held.enter_context(file_lock(self._path))
        return True

    def release(self) -> None:
        self._held.close()


class SnapshotFileBackend(JournalFileBackend, BaseJournalSnapshot):
    """Optuna's file backend, plus its latest replay snapshot in `<journal>.snapshot`."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path, lock_obj=FlockJournalLock(file_path))
        self._snapshot_path = Path(file_path + ".snapshot")

    def save_snapshot(self, snapshot: bytes) -> None:
        partial = self._snapshot_path.with_name(f"{self._snapshot_path.name}.{os.getpid()}.partial")
        partial.write_bytes(snapshot)
        os.replace(partial, self._snapshot_path)  # readers see the old snapshot or the new one, whole

    def load_snapshot(self) -> bytes | None:
        try:
            return self._snapshot_path.read_bytes()
        except FileNotFoundError:
            return None


class PostgresJournalBackend(BaseJournalBackend, BaseJournalSnapshot):
    """The journal as rows numbered 0, 1, 2, ... in a PostgreSQL table.

    An append is one round trip: a transaction-scoped advisory lock, then the insert that
    numbers its records after the last committed one. The lock is held from before the
    numbering until the commit, so records are numbered and committed in one order and every
    reader sees a gap-free prefix (a sequence would leave gaps and commit out of order).
    psycopg2 straight, on one connection of this process in autocommit mode: every call is
    a single statement string (a read, or lock + insert as one implicit transaction), and
    SQLAlchemy's pool and transaction round trips would double the journal's cost.
    """

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._key = advisory_key(f"loopml.optuna_journal:{JOURNAL_TABLE}")
        self._connection: Any = None
        self._last_used = time.monotonic()
        self._execute(  # two first processes must not both create the tables
            f"SELECT pg_advisory_xact_lock(%(key)s);"
            f" CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} (log_number bigint PRIMARY KEY, log text NOT NULL);"
            f" CREATE TABLE IF NOT EXISTS {SNAPSHOT_TABLE} (id smallint PRIMARY KEY, snapshot bytea NOT NULL)",
            {"key": self._key},
        )

    def _execute(self, sql: str, params: dict[str, Any], *, fetch: bool = False, retry: bool = False) -> list[tuple]:
        """Run `sql` (one or more statements: one implicit transaction); its rows if `fetch`.
        A connection idle for over PING_AFTER_IDLE_S is checked first, as SQLAlchemy's
        pre-ping does (a server restart, or a network device that drops idle connections
        during a long trial): an append must not be the statement that finds it dead."""
        if time.monotonic() - self._last_used > PING_AFTER_IDLE_S:
            self._run("SELECT 1", {}, fetch=False, retry=True)
        return self._run(sql, params, fetch=fetch, retry=retry)

    def _run(self, sql: str, params: dict[str, Any], *, fetch: bool, retry: bool) -> list[tuple]:
        """`sql` on this process's connection; a broken one is replaced on the next call, and
        only reads (`retry`) are re-sent at once, since a lost answer to an append may hide a
        committed one."""
        import psycopg2

        for attempt in (1, 2):
            if self._connection is None or self._connection.closed:
                self._connection = psycopg2.connect(self._dsn)
                self._connection.autocommit = True
            try:
                with self._connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    rows = cursor.fetchall() if fetch else []
                self._last_used = time.monotonic()
                return rows
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self._connection.close()
                if not retry or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        rows = self._execute(
            f"SELECT log FROM {JOURNAL_TABLE} WHERE log_number >= %(start)s ORDER BY log_number",
            {"start": log_number_from},
            fetch=True,
            retry=True,
        )
        return [json.loads(log) for (log,) in rows]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._execute(
            f"SELECT pg_advisory_xact_lock(%(key)s);"
            f" INSERT INTO {JOURNAL_TABLE} (log_number, log)"
            f" SELECT (SELECT coalesce(max(log_number) + 1, 0) FROM {JOURNAL_TABLE}) + record.number - 1, record.log"
            f" FROM unnest(%(logs)s::text[]) WITH ORDINALITY AS record(log, number)",
            {"key": self._key, "logs": [json.dumps(log, separators=(",", ":")) for log in logs]},
        )

    def save_snapshot(self, snapshot: bytes) -> None:
        self._execute(  # psycopg2 sends `bytes` as bytea
            f"INSERT INTO {SNAPSHOT_TABLE} (id, snapshot) VALUES (0, %(snapshot)s)"
            " ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot",
            {"snapshot": snapshot},
        )

    def load_snapshot(self) -> bytes | None:
        rows = self._execute(f"SELECT snapshot FROM {SNAPSHOT_TABLE} WHERE id = 0", {}, fetch=True, retry=True)
        return bytes(rows[0][0]) if rows else None


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with heartbeats, so the running trials of a dead worker are
    found stale (`_get_stale_trial_ids`) as on the RDB storage."""

    def __init__(
        self,
        backend: BaseJournalBackend,
        *,
        heartbeat_interval: int,
        grace_period: int,
    ) -> None:
        super().__init__(backend)
        self._heartbeat_interval, self._grace_period = heartbeat_interval, grace_period

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except UpdateFinishedTrialError:  # ended meanwhile (timed out): nothing to keep alive, as on the RDB storage
            pass

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        # a trial that never beat is not stale (as on the RDB storage: its worker beats first)
        deadline = time.time() - self._grace_period
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [t._trial_id for t in running if t.system_attrs.get(HEARTBEAT_ATTR, deadline) < deadline]

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, Any], None] | None:
        return None  # loopml fails and retries stale trials itself (storage.fail_dead_workers_trials)


def open_journal(url: str, *, heartbeat_interval: int, grace_period: int) -> HeartbeatJournalStorage:
    """The journal storage at `url`: `journal+file:///path` or `journal+postgresql://...`."""
    where = database_url(url)
    if where.startswith("file://"):
        path = Path(where[len("file://") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        backend: BaseJournalBackend = SnapshotFileBackend(str(path))
    elif is_postgres(url):
        backend = PostgresJournalBackend(where)
    else:
        raise ValueError(
            f"Optuna storage {url!r}: a journal lives in a file ({JOURNAL_PREFIX}file:///path)"
            f" or in PostgreSQL ({JOURNAL_PREFIX}postgresql://host/db)"
        )
    return HeartbeatJournalStorage(backend, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
