"""Class labels as the codes 0..k-1 boosted-trees libraries score with."""

from __future__ import annotations

import numpy as np


def label_codes(classes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The position of each of `labels` in the sorted `classes` a model was fitted on.

    Raises ValueError naming the labels `classes` lacks: `np.searchsorted` alone would give
    such a label a neighbour's code, and a model scored against it would be wrong silently."""
    labels = np.asarray(labels)
    unseen = np.setdiff1d(labels, classes)
    if len(unseen):
        raise ValueError(
            f"the early-stopping rows hold class(es) {unseen[:5].tolist()} that the rows fitted on lack "
            f"(fitted on {np.asarray(classes)[:10].tolist()})"
        )
    return np.searchsorted(classes, labels)
