"""XGBoost models as loopml's tabular pipeline uses them (`model: xgboost`, which a search space can name).

`XGBClassifier` requires the classes to be 0..k-1 and its `predict` returns those indices;
loopml's targets keep the user's labels (text or numbers) as every other model of the space
takes them, so the classifier here encodes them in `fit` and gives them back in `predict`
and `classes_` (what the ONNX converter and the served model's label output read).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost

from automl_tasks.estimators.label_codes import FittedOnLabelCodes


class XGBoostClassifier(FittedOnLabelCodes, xgboost.XGBClassifier):
    """`XGBClassifier` fitted on any class labels; `classes_` and `predict` give them back."""

    def library_classes(self) -> np.ndarray:
        return np.arange(self.n_classes_)

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        return self.classes_[np.asarray(super().predict(X, **kwargs), dtype=np.int64)]


class XGBoostRegressor(xgboost.XGBRegressor):
    """`XGBRegressor` under loopml's name, so the ONNX converter registered for it is ours."""


def make_xgboost(params: dict[str, Any], *, classify: bool, seed: int) -> xgboost.XGBModel:
    """An XGBoost model of the space's parameters: histogram trees grown leaf-wise up to
    `max_leaves` (as FLAML's `xgboost` learner, and as LightGBM grows them) when the space
    names it, one thread (the search runs one trial per worker), numbers only (categories
    arrive as codes)."""
    cls = XGBoostClassifier if classify else XGBoostRegressor
    growth = {"grow_policy": "lossguide", "max_depth": 0} if "max_leaves" in params else {}
    return cls(**(growth | params), tree_method="hist", random_state=seed, n_jobs=1, verbosity=0)
