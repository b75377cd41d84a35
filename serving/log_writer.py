"""Group commit of the inference log: concurrent requests share one transaction.

Each answered request awaits `GroupLog.append(records)` before its answer is sent, so the
promise of the inference log holds (every answered request is on disk, kill -9 included).
Requests that reach the log in the same event-loop turn (typically the requests of one
model batch, resumed together) are written by one transaction; the commit runs on the
event loop (a WAL commit with synchronous=NORMAL takes ~0.1 ms, less than a thread hop)
right after the last of them queued its records, so a lone request waits for nothing.
SQLite's automatic checkpoints (an fsync of the database file every ~1000 WAL pages) are
off on that connection; a background thread checkpoints every `checkpoint_s` instead,
so no request waits for a disk flush. A committed record is in the WAL file, which a
killed process does not lose. Hand-written because neither BentoML nor sqlite3 offers
a group commit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable

from automl_tasks.monitoring import InferenceLog, InferenceRecord


class GroupLog:
    """Awaitable appends to one `InferenceLog`, committed together per event-loop turn."""

    def __init__(self, log: InferenceLog, checkpoint_s: float = 1.0) -> None:
        self.log = log
        self._pending: list[tuple[list[InferenceRecord], asyncio.Future]] = []
        self._autocheckpoint_off = False
        self.commits = 0
        self.requests = 0
        self._stop = threading.Event()
        self._checkpoint_s = checkpoint_s
        threading.Thread(target=self._checkpoints, daemon=True, name="loopml-log-checkpoint").start()

    def _checkpoints(self) -> None:
        while not self._stop.wait(self._checkpoint_s):
            try:
                self.log.checkpoint()
            except Exception as exc:  # the next round tries again; commits are not affected
                logging.getLogger(__name__).warning("inference-log checkpoint failed: %s", exc)

    def close(self) -> None:
        self._stop.set()

    async def append(self, records: Iterable[InferenceRecord]) -> None:
        """Returns once `records` are committed (raises what the write raised)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((list(records), future))
        await future

    def _flush(self) -> None:
        group, self._pending = self._pending, []
        try:
            if not self._autocheckpoint_off:
                self.log.set_autocheckpoint(0)
                self._autocheckpoint_off = True
            self.log.append(record for records, _ in group for record in records)
        except Exception as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self.commits += 1
        self.requests += len(group)
        for _, future in group:
            if not future.done():
                future.set_result(None)
