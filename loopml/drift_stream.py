"""Request streams for the drift demo, its tests and benchmark: like the training data, or shifted.

`shifted` moves a few numeric columns by several standard deviations (covariate drift)
and flips the label in the moved region (concept drift), so a champion trained on the
old data is confidently wrong there and a retrained model can learn the new rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHIFT_STDS = 3.0


def shift_columns(frame: pd.DataFrame, target: str, k: int) -> list[str]:
    """The `k` numeric feature columns the shifted stream moves (the first ones, for repeatability)."""
    numeric = [c for c in frame.columns if c != target and pd.api.types.is_numeric_dtype(frame[c])]
    return numeric[:k]


def like_reference(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """`n` rows resampled from `frame` with 1% noise on numeric columns: no drift."""
    rng = np.random.default_rng(seed)
    rows = frame.iloc[rng.integers(0, len(frame), n)].reset_index(drop=True)
    for column in rows.columns:
        if pd.api.types.is_float_dtype(rows[column]):
            rows[column] = rows[column] * (1 + rng.normal(0, 0.01, n))
    return rows


def shifted(frame: pd.DataFrame, target: str, n: int, *, seed: int = 0, columns: int = 12) -> pd.DataFrame:
    """`n` resampled rows with `columns` numeric columns moved by SHIFT_STDS std and the label flipped."""
    rows = like_reference(frame, n, seed)
    for column in shift_columns(frame, target, columns):
        rows[column] = rows[column] + SHIFT_STDS * float(frame[column].std())
    labels = sorted(frame[target].unique())
    if len(labels) == 2:
        rows[target] = rows[target].map({labels[0]: labels[1], labels[1]: labels[0]})
    return rows
