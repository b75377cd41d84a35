"""Adaptive batching: concurrent requests for the same model share one inference call.

A request that arrives while the model is idle runs at once (no added latency); requests
that arrive while a call is running queue up and go together in the next call, up to
`max_rows` rows. The batch size follows the load by itself: 1 when idle, larger under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pandas as pd


class AdaptiveBatcher:
    """Batches `run(rows) -> (labels, proba | None)` calls of one model.

    Rows are anything with a length that `concat` joins (a DataFrame by default; the
    service passes `serving.request_model.Features`).
    """

    def __init__(
        self,
        run: Callable[[Any], Any],
        *,
        max_rows: int = 512,
        inline_rows: int = 64,
        concat: Callable[[list[Any]], Any] = lambda frames: pd.concat(frames, ignore_index=True),
    ) -> None:
        self.run = run
        self.concat = concat
        self.max_rows = max_rows
        self.inline_rows = inline_rows
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self.calls = 0
        self.rows = 0

    async def infer(self, frame: pd.DataFrame):
        """(labels, proba) for `frame`, computed in a batch with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._drain())
        future = loop.create_future()
        await self._queue.put((frame, future))
        return await future

    async def _drain(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            rows = len(batch[0][0])
            while rows < self.max_rows and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                rows += len(batch[-1][0])
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[tuple[pd.DataFrame, asyncio.Future]]) -> None:
        sizes = [len(frame) for frame, _ in batch]
        try:
            frame = batch[0][0] if len(batch) == 1 else self.concat([f for f, _ in batch])
            if len(frame) <= self.inline_rows:
                # small calls run on the event loop: a thread hop costs more than the model;
                # requests arriving meanwhile queue up and form the next batch
                labels, proba = self.run(frame)
            else:
                labels, proba = await asyncio.to_thread(self.run, frame)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.calls += 1
        self.rows += sum(sizes)
        start = 0
        for (_, future), n in zip(batch, sizes, strict=True):
            part = (labels[start : start + n], None if proba is None else proba[start : start + n])
            start += n
            if not future.done():
                future.set_result(part)
