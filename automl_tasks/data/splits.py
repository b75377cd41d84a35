"""Deterministic train / validation / test splits shared by every trial and the final fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: the shares of a table the test and validation splits hold
TEST_SHARE, VALID_SHARE = 0.2, 0.2


@dataclass(frozen=True)
class Splits:
    """Row positions of each split; the same dataset version and seed give the same splits."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def make_splits(
    target: pd.Series, task_type: str, *, seed: int = 0, test_size: float = TEST_SHARE, valid_size: float = VALID_SHARE
) -> Splits:
    """Stratified (classification) or plain shuffled splits of row positions."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(target))
    stratify = target.to_numpy() if task_type in ("binary", "multiclass") else None
    rest, test = train_test_split(positions, test_size=test_size, random_state=seed, stratify=stratify)
    rest_stratify = stratify[rest] if stratify is not None else None
    train, valid = train_test_split(
        rest, test_size=valid_size / (1 - test_size), random_state=seed, stratify=rest_stratify
    )
    return Splits(train=np.sort(train), valid=np.sort(valid), test=np.sort(test))
