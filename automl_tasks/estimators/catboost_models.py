"""CatBoost models as loopml's tabular pipeline uses them (`model: catboost`, which a search space can name).

CatBoost orders the classes of its probability columns by its own rules (labels read as
text), so the classifier here fits on codes 0..k-1 of the sorted labels, as the XGBoost one
does, and gives the user's labels back in `predict` and `classes_` (what the ONNX converter
and the served model's label output read). CatBoost pickles only its own parameters and
model, so the labels travel in the pickled state under their own key.
"""

from __future__ import annotations

from typing import Any

import catboost
import numpy as np
from sklearn.base import ClassifierMixin

from automl_tasks.estimators.label_codes import FittedOnLabelCodes

#: the pickled state's key for the classifier's labels (CatBoost's own state keeps no attributes)
LABELS_STATE_KEY = "__loopml_labels"


class CatBoostClassifier(FittedOnLabelCodes, catboost.CatBoostClassifier, ClassifierMixin):
    """`CatBoostClassifier` fitted on any class labels; `classes_` and `predict` give them back.
    scikit-learn's classifier mixin (after CatBoost's own methods) marks it a classifier for
    skl2onnx, which then declares a label and a probabilities output."""

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X, **kwargs), axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if self.__dict__.get("labels_") is not None:
            state[LABELS_STATE_KEY] = self.labels_
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        labels = state.pop(LABELS_STATE_KEY, None)
        super().__setstate__(state)
        if labels is not None:
            self.labels_ = labels


class CatBoostRegressor(catboost.CatBoostRegressor):
    """`CatBoostRegressor` under loopml's name, so the ONNX converter registered for it is
    ours; without CatBoost's `classes_` (every CatBoost model has one), which the pipelines
    and converters read as "this is a classifier"."""

    @property
    def classes_(self) -> np.ndarray:
        raise AttributeError("a regressor has no classes")


def make_catboost(params: dict[str, Any], *, classify: bool, seed: int) -> catboost.CatBoost:
    """A CatBoost model of the space's parameters (symmetric trees, CatBoost's defaults for the
    rest), one thread (the search runs one trial per worker), numbers only (categories arrive
    as codes: CatBoost's ONNX-exportable models take no categorical features), silent and
    writing no `catboost_info/` folder into the working directory."""
    cls = CatBoostClassifier if classify else CatBoostRegressor
    return cls(**params, random_seed=seed, thread_count=1, verbose=0, allow_writing_files=False)
