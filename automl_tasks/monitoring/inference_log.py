"""The inference log: every served prediction, durable before the response is sent.

One SQLite file per family in the workspace (WAL mode, one transaction per `append`; the
service groups the requests of one event-loop turn into one append, see
`serving.log_writer`), so a record is on disk when the client gets its answer and a
restart loses nothing. Ground
truth that arrives later (POST /feedback) is stored beside the predictions it belongs to.
The drift pipeline reads recent windows of it, labels included, as a DataFrame.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl_tasks.core.errors import InvalidValueError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    request_id TEXT NOT NULL,
    family TEXT NOT NULL,
    version TEXT NOT NULL,
    variant TEXT NOT NULL,
    inputs TEXT NOT NULL,
    output TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts);
CREATE INDEX IF NOT EXISTS predictions_request ON predictions (request_id);
CREATE TABLE IF NOT EXISTS labels (
    request_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    label TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (request_id, row)
);
"""


@dataclass(frozen=True)
class InferenceRecord:
    """One row of one request."""

    request_id: str
    version: str
    variant: str
    inputs: dict[str, Any]
    output: Any
    ts: float


class InferenceLog:
    """Append-only prediction log of one family."""

    def __init__(self, path: Path, family: str) -> None:
        self.path = path
        self.family = family
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @classmethod
    def for_family(cls, home: Path, family: str) -> InferenceLog:
        return cls(home / "inference" / f"{family}.sqlite", family)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def append(self, records: Iterable[InferenceRecord]) -> int:
        rows = [
            (r.ts, r.request_id, self.family, r.version, r.variant, json.dumps(r.inputs), json.dumps(r.output))
            for r in records
        ]
        conn = self._connect()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO predictions (ts, request_id, family, version, variant, inputs, output) VALUES (?,?,?,?,?,?,?)",
            rows,
        )
        conn.execute("COMMIT")
        return len(rows)

    def set_autocheckpoint(self, pages: int) -> None:
        """SQLite's automatic WAL checkpoint for this thread's connection (0: off).

        A checkpoint fsyncs the database file; a writer on a latency-critical thread
        turns it off and lets another thread call `checkpoint`."""
        self._connect().execute(f"PRAGMA wal_autocheckpoint={int(pages)}")

    def checkpoint(self) -> None:
        """Copy committed WAL frames into the database file, without blocking writers."""
        self._connect().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def add_labels(self, request_id: str, labels: list[Any]) -> int:
        """Record the true outcome of each row of an earlier request (one label per row, in order).

        Raises ValueError when the request is unknown or the number of labels differs from
        its number of rows; a label sent again for the same row replaces the earlier one.
        """
        conn = self._connect()
        rows = conn.execute("SELECT COUNT(*) FROM predictions WHERE request_id = ?", (request_id,)).fetchone()[0]
        if rows == 0:
            raise InvalidValueError(f"no logged request has request_id {request_id!r}")
        if len(labels) != rows:
            raise InvalidValueError(f"request {request_id} had {rows} rows; got {len(labels)} labels")
        now = time.time()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR REPLACE INTO labels (request_id, row, label, ts) VALUES (?,?,?,?)",
            [(request_id, i, json.dumps(label), now) for i, label in enumerate(labels)],
        )
        conn.execute("COMMIT")
        return rows

    def count(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM predictions").fetchone()[0]

    def read(self, since: float = 0.0, limit: int | None = None):  # -> pandas.DataFrame
        """Records since `since` (epoch seconds): one column per input, plus metadata columns.

        `_label` holds the ground truth sent for the row through feedback, None when none came.
        """
        import pandas as pd

        query = (
            "SELECT p.ts, p.request_id, p.version, p.variant, p.inputs, p.output, l.label FROM "
            "(SELECT *, ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY id) - 1 AS row "
            "FROM predictions WHERE ts >= ?) AS p "
            "LEFT JOIN labels AS l ON l.request_id = p.request_id AND l.row = p.row ORDER BY p.id"
        )
        params: list[Any] = [since]
        if limit:
            query += " LIMIT ?"
            params.append(limit)
        rows = self._connect().execute(query, params).fetchall()
        inputs = pd.DataFrame([json.loads(r[4]) for r in rows])
        meta = pd.DataFrame(
            {
                "_ts": [r[0] for r in rows],
                "_request_id": [r[1] for r in rows],
                "_version": [r[2] for r in rows],
                "_variant": [r[3] for r in rows],
                "_prediction": [json.loads(r[5]) for r in rows],
                "_label": [None if r[6] is None else json.loads(r[6]) for r in rows],
            }
        )
        return pd.concat([inputs, meta], axis=1)
