"""Answer the queries of many concurrent black-box attacks with one batched model call.

ART's HopSkipJump attacks one row at a time and asks the model about a few points per call
(its binary searches ask one): about a hundred calls a row. A scikit-learn pipeline costs
about the same per call whatever the batch (a forest's is milliseconds), so rows attacked
one after the other cost rows x calls of it. Each row's attack runs in
its own thread; when every live attack is waiting, the last one to ask answers them all
with one call of `answer_all` (the adaptive batching BentoML does for requests) - 20 rows
then cost about as many model calls, and input frames built, as one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class CoalescingPredictor:
    """`ask(query)` from `parties` threads; `answer_all(queries)` answers a round's queries at once."""

    def __init__(self, answer_all: Callable[[list[Any]], list[Any]], parties: int) -> None:
        self._answer_all = answer_all
        self._live = parties
        self._pending: dict[int, Any] = {}
        self._answers: dict[int, Any] = {}
        self._next = 0
        self._cond = threading.Condition()
        self.calls = 0

    def ask(self, query: Any) -> Any:
        with self._cond:
            ticket, self._next = self._next, self._next + 1
            self._pending[ticket] = query
            self._maybe_answer()
            while ticket not in self._answers:
                self._cond.wait()
            answer = self._answers.pop(ticket)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def leave(self) -> None:
        """A thread whose attack has finished (or failed) asks no more."""
        with self._cond:
            self._live -= 1
            self._maybe_answer()

    def _maybe_answer(self) -> None:
        """With the lock held: when every live thread waits, answer them all in one call."""
        if not self._pending or len(self._pending) < self._live:
            return
        tickets = list(self._pending)
        queries = [self._pending.pop(t) for t in tickets]
        try:
            answers = self._answer_all(queries)
            self.calls += 1
            for t, answer in zip(tickets, answers, strict=True):
                self._answers[t] = answer
        except BaseException as exc:  # noqa: BLE001 - every waiting attack gets the error
            for t in tickets:
                self._answers[t] = exc
        self._cond.notify_all()
