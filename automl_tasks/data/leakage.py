"""Columns that alone predict the target almost perfectly: a likely leak or row index.

A row number in a table sorted by label, or a copy of the target under another name,
gives a model that looks perfect on the held-out split and is useless in serving. Each
feature is scored on its own by a shallow decision tree on held-out folds (a threshold
or two on one column is all a row index needs); a column that scores at least
`threshold` is reported, and the advisor warns about it. Cheap: at most `max_rows`
sampled rows, one small tree per fold and column.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: held-out balanced accuracy (classification) or R² (regression) that means "almost perfectly"
LEAK_SCORE = 0.98
_MAX_ROWS = 5000
_FOLDS = 3


def single_column_predictors(
    frame: pd.DataFrame, target: str, task_type: str, *, threshold: float = LEAK_SCORE, max_rows: int = _MAX_ROWS
) -> list[dict[str, float | str]]:
    """[{"column", "score"}] for each feature that alone reaches `threshold` on held-out folds."""
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    data = frame.dropna(subset=[target])
    if len(data) > max_rows:
        data = data.sample(max_rows, random_state=0)
    classify = task_type in ("binary", "multiclass")
    y = data[target]
    if classify:
        y = pd.Series(pd.factorize(y)[0], index=y.index)
        if y.value_counts().min() < _FOLDS:
            return []  # too few rows of a class to hold any out
        folds = StratifiedKFold(_FOLDS, shuffle=True, random_state=0)
        model, scoring = DecisionTreeClassifier(max_depth=4, random_state=0), "balanced_accuracy"
    else:
        if len(data) < 2 * _FOLDS or y.nunique() < 2:
            return []
        folds = KFold(_FOLDS, shuffle=True, random_state=0)
        model, scoring = DecisionTreeRegressor(max_depth=4, random_state=0), "r2"
    found = []
    for column in data.columns:
        if column == target:
            continue
        x = _as_number(data[column])
        if x is None:
            continue
        score = float(np.mean(cross_val_score(model, x.reshape(-1, 1), y, cv=folds, scoring=scoring)))
        if math.isfinite(score) and score >= threshold:
            found.append({"column": str(column), "score": round(score, 4)})
    return found


def _as_number(series: pd.Series) -> np.ndarray | None:
    """The column as floats (categories as codes, missing as -1e12); None when constant."""
    if series.nunique(dropna=True) < 2:
        return None
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        values = pd.to_numeric(series, errors="coerce").astype(float)
    else:
        values = pd.Series(pd.factorize(series)[0], index=series.index).astype(float).where(series.notna())
    values = values.replace([np.inf, -np.inf], np.nan)
    return values.fillna(-1e12).to_numpy()
