"""A weighted average of fitted tabular pipelines, served as one model (issue #11).

Ensemble selection (`ensemble_selection.greedy_weights`) picks the members and weights;
this is the fitted result: scikit-learn's predict / predict_proba interface over the
members, so the export, the parity check, the family evaluation and the BentoML service
treat it like any pipeline. scikit-learn's VotingClassifier/VotingRegressor refit their
members and need one shared input layout; the members here are already fitted, each with
its own preprocessing, hence this small class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.metaestimators import available_if


def average(predictions: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted mean of the members' probabilities (or regression values)."""
    total = float(sum(weights))
    out = np.zeros_like(np.asarray(predictions[0], dtype=np.float64))
    for prediction, weight in zip(predictions, weights, strict=True):
        out += (weight / total) * np.asarray(prediction, dtype=np.float64)
    return out


class WeightedEnsemble:
    """Fitted member pipelines and their weights; a classifier when the members are."""

    def __init__(self, members: Sequence[Any], weights: Sequence[float]) -> None:
        if not members or len(members) != len(weights):
            raise ValueError(f"an ensemble needs one weight per member; got {len(members)} and {len(weights)}")
        self.members = list(members)
        self.weights = [float(w) for w in weights]
        classes = [getattr(m, "classes_", None) for m in self.members]
        if classes[0] is not None:
            if any(c is None or not np.array_equal(c, classes[0]) for c in classes):
                raise ValueError("the ensemble's members were fitted on different classes")
            self.classes_ = classes[0]

    # absent on a regression ensemble, as on a regression pipeline: deploy.runtime and
    # serving.explain tell a classifier by hasattr(model, "predict_proba")
    @available_if(lambda self: hasattr(self, "classes_"))
    def predict_proba(self, features: Any) -> np.ndarray:
        return average([m.predict_proba(features) for m in self.members], self.weights)

    def predict(self, features: Any) -> np.ndarray:
        if hasattr(self, "classes_"):
            return self.classes_[np.argmax(self.predict_proba(features), axis=1)]
        return average([m.predict(features) for m in self.members], self.weights)
