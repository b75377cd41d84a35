"""The inference log: every served prediction, durable before the response is sent.

One SQLite file per family in the workspace (WAL mode, one transaction per request), so
a record is on disk when the client gets its answer and a restart loses nothing. The
drift pipeline reads recent windows of it as a DataFrame.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def count(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM predictions").fetchone()[0]

    def read(self, since: float = 0.0, limit: int | None = None):  # -> pandas.DataFrame
        """Records since `since` (epoch seconds): one column per input, plus metadata columns."""
        import pandas as pd

        query = "SELECT ts, request_id, version, variant, inputs, output FROM predictions WHERE ts >= ? ORDER BY id"
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
            }
        )
        return pd.concat([inputs, meta], axis=1)
