"""Per-prediction feature attributions with SHAP (permutation explainer, model-agnostic).

Attributions are for the served version's native model and are given per original input
column: for classification, of the probability of the positive (binary) or predicted
(multiclass) class; for regression, of the predicted value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BACKGROUND_ROWS = 50


class Explainer:
    """Wraps one native model and a background sample of the family's evaluation data."""

    def __init__(self, native: Any, schema, background: pd.DataFrame) -> None:
        self.native = native
        self.schema = schema
        self.columns = list(background.columns)
        self.background = background.sample(min(BACKGROUND_ROWS, len(background)), random_state=0)
        self.classify = hasattr(native, "predict_proba")
        self.categories: dict[str, list[str]] = {}

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Numbers for SHAP: categorical text becomes its index in the known categories."""
        out = frame.copy()
        for name in self.schema.model_categorical:
            known = self.categories.setdefault(name, sorted(set(self.background[name])))
            for value in frame[name]:
                if value not in known:
                    known.append(value)
            out[name] = [known.index(v) for v in frame[name]]
        return out.to_numpy(dtype=float)

    def _output(self, values: np.ndarray, target_class: int | None) -> np.ndarray:
        frame = pd.DataFrame(values, columns=self.columns)
        for name in self.schema.model_categorical:
            known = self.categories[name]
            frame[name] = [known[int(round(v))] for v in frame[name]]
        if not self.classify:
            return np.asarray(self.native.predict(frame), dtype=float)
        proba = self.native.predict_proba(frame)
        return proba[:, target_class if target_class is not None else -1]

    def explain(self, features: pd.DataFrame) -> list[dict[str, Any]]:
        import shap

        out = []
        originals = {v: k for k, v in self.schema.model_names.items()}
        for i in range(len(features)):
            row = features.iloc[[i]]
            target_class, label = None, None
            if self.classify:
                proba = self.native.predict_proba(row)[0]
                target_class = 1 if len(proba) == 2 else int(np.argmax(proba))
                label = self.native.classes_[target_class]
            explainer = shap.explainers.Permutation(
                lambda x, c=target_class: self._output(x, c),
                shap.maskers.Independent(self._encode(self.background), max_samples=BACKGROUND_ROWS),
                seed=0,
            )
            values = explainer(self._encode(row), max_evals=2 * len(self.columns) + 1, silent=True)
            contributions = {originals[c]: float(v) for c, v in zip(self.columns, values.values[0], strict=True)}
            out.append(
                {
                    "explained": f"P(class={label})" if self.classify else "prediction",
                    "base_value": float(np.ravel(values.base_values)[0]),
                    "attributions": dict(sorted(contributions.items(), key=lambda kv: -abs(kv[1]))),
                }
            )
        return out
