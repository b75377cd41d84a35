"""Texts to token batches: tokenise once, pad each batch to its own longest text.

Padding per batch instead of to `max_length` is most of the CPU time saved on short texts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from automl_tasks.deploy.text_model import TEXT_COLUMN, padded

__all__ = ["TEXT_COLUMN", "batches", "padded", "tokenise"]


def tokenise(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, truncated to `max_length` tokens (special tokens included)."""
    return tokenizer(list(texts), truncation=True, max_length=int(max_length))["input_ids"]


def batches(ids: Sequence[Sequence[int]], batch_size: int, order: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Row indices, `batch_size` at a time, in `order` (default: sorted by length, so batches pad little)."""
    if order is None:
        order = np.argsort([len(row) for row in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
