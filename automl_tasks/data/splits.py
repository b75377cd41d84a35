"""Deterministic train / validation / test splits shared by every trial and the final fit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: the shares of a table the test and validation splits hold
TEST_SHARE, VALID_SHARE = 0.2, 0.2
#: the folds of a cross-validated search; a class with fewer rows than this in the rows
#: being split cannot give each fold one row to score, nor be stratified: its rows are only
#: ever fitted on, never held out (`held_out_classes`)
CV_FOLDS = 5


def held_out_classes(labels: np.ndarray) -> np.ndarray | None:
    """A boolean per row of `labels`: whether its class has rows enough (`CV_FOLDS`) to be held
    out of them for scoring. The rows of a rarer class go to the rows every model is fitted
    on, so every model knows every class (FLAML copies such rows into the training rows for
    the same reason); scores are then taken over the other classes. None when fewer than two
    classes have rows enough: nothing could be scored, so the caller splits every row."""
    _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if int((counts >= CV_FOLDS).sum()) < 2:
        return None
    return (counts >= CV_FOLDS)[codes.reshape(-1)]


def min_scored_class_rows(test_share: float = TEST_SHARE) -> int:
    """The fewest rows a class of a whole table needs for `CV_FOLDS` of them to stay beside
    the test split (which takes at most ceil(share x rows) of each class): so the search can
    score it."""
    rows = CV_FOLDS
    while rows - math.ceil(rows * test_share) < CV_FOLDS:
        rows += 1
    return rows


@dataclass(frozen=True)
class Splits:
    """Row positions of each split; the same dataset version and seed give the same splits."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def make_splits(
    target: pd.Series, task_type: str, *, seed: int = 0, test_size: float = TEST_SHARE, valid_size: float = VALID_SHARE
) -> Splits:
    """Stratified (classification) or plain shuffled splits of row positions. The rows of a
    class too rare to hold out (`held_out_classes`) are all in the train split, unless that
    would leave fewer than two classes to score."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(target))
    stratify = target.to_numpy() if task_type in ("binary", "multiclass") else None
    fit_only = positions[:0]
    if stratify is not None:
        held_out = held_out_classes(stratify)
        if held_out is not None:
            positions, fit_only = positions[held_out], positions[~held_out]
            stratify = stratify[held_out]
    rest, test = train_test_split(positions, test_size=test_size, random_state=seed, stratify=stratify)
    rest_stratify = target.to_numpy()[rest] if stratify is not None else None
    train, valid = train_test_split(
        rest, test_size=valid_size / (1 - test_size), random_state=seed, stratify=rest_stratify
    )
    return Splits(train=np.sort(np.concatenate([train, fit_only])), valid=np.sort(valid), test=np.sort(test))
