"""Evaluation metrics by name, with their optimisation direction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from automl_tasks.core.errors import InvalidValueError

_CLASSIFICATION = ("roc_auc", "accuracy", "f1_macro", "log_loss")
_REGRESSION = ("r2", "rmse", "mae")
_MINIMISE = ("log_loss", "rmse", "mae")
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}


@dataclass(frozen=True)
class Metric:
    """A named metric; `needs_proba` says whether it scores probabilities."""

    name: str

    @property
    def direction(self) -> str:
        return "minimize" if self.name in _MINIMISE else "maximize"

    @property
    def needs_proba(self) -> bool:
        return self.name in ("roc_auc", "log_loss")

    def gain(self, new: float, old: float) -> float:
        """How much `new` improves on `old` (positive = better), whatever the direction."""
        return old - new if self.direction == "minimize" else new - old

    def __call__(self, y_true: np.ndarray, prediction: np.ndarray, classes: np.ndarray | None = None) -> float:
        from sklearn import metrics as m

        if self.name == "roc_auc":
            if prediction.ndim == 2 and prediction.shape[1] == 2:
                return float(m.roc_auc_score(y_true, prediction[:, 1]))
            present = np.isin(classes, y_true) if classes is not None else None
            if present is not None and not present.all():
                # one-vs-rest over the classes these rows hold: a class fitted on but absent
                # here (too rare to hold out, data/splits) has no ROC curve of its own
                aucs = [m.roc_auc_score(y_true == classes[i], prediction[:, i]) for i in np.flatnonzero(present)]
                return float(np.mean(aucs))
            return float(m.roc_auc_score(y_true, prediction, multi_class="ovr", labels=classes))
        if self.name == "log_loss":
            return float(m.log_loss(y_true, prediction, labels=classes))
        if self.name == "accuracy":
            return float(m.accuracy_score(y_true, prediction))
        if self.name == "f1_macro":
            return float(m.f1_score(y_true, prediction, average="macro"))
        if self.name == "r2":
            return float(m.r2_score(y_true, prediction))
        if self.name == "rmse":
            return float(np.sqrt(m.mean_squared_error(y_true, prediction)))
        if self.name == "mae":
            return float(m.mean_absolute_error(y_true, prediction))
        raise AssertionError(self.name)


def resolve_metric(name: str, task_type: str) -> Metric:
    """The metric `name` ('auto' = the task's default), checked against the task type."""
    if name in ("", "auto"):
        return Metric(DEFAULT_METRIC[task_type])
    allowed = _REGRESSION if task_type == "regression" else _CLASSIFICATION
    if name not in allowed:
        raise InvalidValueError(f"metric {name!r} does not fit a {task_type} task; expected one of {list(allowed)}")
    return Metric(name)
