"""The inference log: every served prediction, durable before the response is sent.

One SQLite file per family in the workspace (WAL mode, one transaction per `append`; the
service groups the requests of one event-loop turn into one append, see
`serving.log_writer`), so a record is on disk when the client gets its answer and a
restart loses nothing. Ground
truth that arrives later (POST /feedback) is stored beside the predictions it belongs to.
The drift pipeline reads recent windows of it, labels included, as a DataFrame.

In the distributed mode (`LOOPML_INFERENCE_LOG_URI`, a PostgreSQL URL) the same log lives
in PostgreSQL (`PostgresInferenceLog`): the servers and the drift checks run on different
machines. `open_inference_log` picks the one the workspace names.
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
from automl_tasks.core.settings import Workspace

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
        return cls(cls.file_of(home, family), family)

    @staticmethod
    def file_of(home: Path, family: str) -> Path:
        """Where the workspace at `home` keeps `family`'s SQLite log."""
        return home / "inference" / f"{family}.sqlite"

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

    def _rows(self, since: float, limit: int | None) -> list[tuple]:
        """(ts, request_id, version, variant, inputs, output, label) of each record since `since`."""
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
        return self._connect().execute(query, params).fetchall()

    def read(self, since: float = 0.0, limit: int | None = None):  # -> pandas.DataFrame
        """Records since `since` (epoch seconds): one column per input, plus metadata columns.

        `_label` holds the ground truth sent for the row through feedback, None when none came.
        """
        import pandas as pd

        rows = self._rows(since, limit)
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


_PG_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS loopml_predictions (
        id BIGSERIAL PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, request_id TEXT NOT NULL,
        family TEXT NOT NULL, version TEXT NOT NULL, variant TEXT NOT NULL, inputs TEXT NOT NULL,
        output TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS loopml_predictions_family_ts ON loopml_predictions (family, ts)",
    "CREATE INDEX IF NOT EXISTS loopml_predictions_request ON loopml_predictions (family, request_id)",
    """CREATE TABLE IF NOT EXISTS loopml_labels (
        family TEXT NOT NULL, request_id TEXT NOT NULL, row_index INTEGER NOT NULL, label TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL, PRIMARY KEY (family, request_id, row_index))""",
)
#: serialises the schema's creation between processes (CREATE ... IF NOT EXISTS races in PostgreSQL)
_PG_SCHEMA_LOCK = 0x6C6F6F706D6C  # "loopml"


class PostgresInferenceLog(InferenceLog):
    """The inference log of one family in PostgreSQL (one table for every family): the same
    records, labels and reads as the SQLite log, for servers and drift checks on separate machines."""

    def __init__(self, url: str, family: str) -> None:  # no SQLite file: InferenceLog.__init__ is not called
        import sqlalchemy

        self.url, self.family = url, family
        self.engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
        with self.engine.begin() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
            for statement in _PG_SCHEMA:
                conn.execute(sqlalchemy.text(statement))

    def append(self, records: Iterable[InferenceRecord]) -> int:
        import sqlalchemy

        rows = [
            {
                "ts": r.ts,
                "request_id": r.request_id,
                "family": self.family,
                "version": r.version,
                "variant": r.variant,
                "inputs": json.dumps(r.inputs),
                "output": json.dumps(r.output),
            }
            for r in records
        ]
        if rows:
            with self.engine.begin() as conn:  # one transaction: committed before the answer goes out
                conn.execute(
                    sqlalchemy.text(
                        "INSERT INTO loopml_predictions (ts, request_id, family, version, variant, inputs, output)"
                        " VALUES (:ts, :request_id, :family, :version, :variant, :inputs, :output)"
                    ),
                    rows,
                )
        return len(rows)

    def set_autocheckpoint(self, pages: int) -> None:
        """Nothing to do: PostgreSQL checkpoints on its own."""

    def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL checkpoints on its own."""

    def add_labels(self, request_id: str, labels: list[Any]) -> int:
        import sqlalchemy

        with self.engine.begin() as conn:
            rows = conn.execute(
                sqlalchemy.text("SELECT COUNT(*) FROM loopml_predictions WHERE family = :f AND request_id = :r"),
                {"f": self.family, "r": request_id},
            ).scalar_one()
            if rows == 0:
                raise InvalidValueError(f"no logged request has request_id {request_id!r}")
            if len(labels) != rows:
                raise InvalidValueError(f"request {request_id} had {rows} rows; got {len(labels)} labels")
            now = time.time()
            conn.execute(
                sqlalchemy.text(
                    "INSERT INTO loopml_labels (family, request_id, row_index, label, ts) VALUES (:f, :r, :i, :l, :ts)"
                    " ON CONFLICT (family, request_id, row_index) DO UPDATE SET label = EXCLUDED.label, ts = EXCLUDED.ts"
                ),
                [
                    {"f": self.family, "r": request_id, "i": i, "l": json.dumps(x), "ts": now}
                    for i, x in enumerate(labels)
                ],
            )
        return rows

    def count(self) -> int:
        import sqlalchemy

        with self.engine.connect() as conn:
            return conn.execute(
                sqlalchemy.text("SELECT COUNT(*) FROM loopml_predictions WHERE family = :f"), {"f": self.family}
            ).scalar_one()

    def _rows(self, since: float, limit: int | None) -> list[tuple]:
        import sqlalchemy

        query = (
            "SELECT p.ts, p.request_id, p.version, p.variant, p.inputs, p.output, l.label FROM "
            "(SELECT *, ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY id) - 1 AS row_index "
            "FROM loopml_predictions WHERE family = :f AND ts >= :since) AS p "
            "LEFT JOIN loopml_labels AS l ON l.family = :f AND l.request_id = p.request_id "
            "AND l.row_index = p.row_index ORDER BY p.id" + (" LIMIT :limit" if limit else "")
        )
        with self.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(sqlalchemy.text(query), {"f": self.family, "since": since, "limit": limit})
            ]


def _in_postgresql(ws: Workspace) -> bool:
    """Whether the workspace keeps its inference logs in PostgreSQL (the distributed mode)."""
    return ws.inference_log_uri.startswith("postgresql")


def open_inference_log(ws: Workspace, family: str) -> InferenceLog:
    """The family's inference log where the workspace keeps it: PostgreSQL when
    `ws.inference_log_uri` names one (the distributed mode), else its SQLite file."""
    if _in_postgresql(ws):
        return PostgresInferenceLog(ws.inference_log_uri, family)
    return InferenceLog.for_family(ws.home, family)


def read_logged_window(ws: Workspace, family: str, since: float):  # -> pandas.DataFrame
    """The family's logged rows since `since` (`InferenceLog.read`), opening its log once; an
    empty frame, and no SQLite file created, when nothing was ever logged."""
    import pandas as pd

    if not _in_postgresql(ws) and not has_inference_log(ws, family):
        return pd.DataFrame()
    return open_inference_log(ws, family).read(since=since)


def has_inference_log(ws: Workspace, family: str) -> bool:
    """Whether anything was ever logged for `family` (without creating its SQLite file)."""
    if _in_postgresql(ws):
        return open_inference_log(ws, family).count() > 0
    return InferenceLog.file_of(ws.home, family).exists()
