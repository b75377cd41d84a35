"""Texts to token batches: tokenise once, pad each batch to its own longest text.

Padding per batch instead of to `max_length` is most of the CPU time saved on short texts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

#: the text column of a stored adaptation dataset (data_preprocess renames the user's column)
TEXT_COLUMN = "text"


def tokenise(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, truncated to `max_length` tokens (special tokens included)."""
    return tokenizer(list(texts), truncation=True, max_length=int(max_length))["input_ids"]


def padded(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 (input_ids, attention_mask) padded to the longest sequence of `ids`."""
    width = max(len(row) for row in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


def batches(ids: Sequence[Sequence[int]], batch_size: int, order: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Row indices, `batch_size` at a time, in `order` (default: sorted by length, so batches pad little)."""
    if order is None:
        order = np.argsort([len(row) for row in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
