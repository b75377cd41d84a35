"""Class labels as the codes 0..k-1 boosted-trees libraries score with."""

from __future__ import annotations

from typing import Any

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


class FittedOnLabelCodes:
    """Mixin, first among the bases, for a library classifier that wants the classes as
    0..k-1 (XGBoost, CatBoost): `fit` fits it on the codes of the sorted labels (and the
    eval set's labels likewise) and `classes_` gives the labels back, so it takes the user's
    labels (text or numbers) as every other model of the tabular space does."""

    def fit(self, X: Any, y: Any, *, eval_set: list[tuple[Any, Any]] | None = None, **kwargs: Any):
        self.__dict__.pop("labels_", None)  # a library's fit may read `classes_` (XGBoost: 0..k-1)
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        if eval_set is not None:
            eval_set = [(x, label_codes(labels, v)) for x, v in eval_set]
        super().fit(X, codes, eval_set=eval_set, **kwargs)
        self.labels_ = labels
        return self

    @property
    def classes_(self) -> np.ndarray:
        labels = self.__dict__.get("labels_")
        return labels if labels is not None else self.library_classes()

    def library_classes(self) -> np.ndarray:
        """The library's own classes (before `fit` gave the labels)."""
        return np.asarray(super().classes_)
