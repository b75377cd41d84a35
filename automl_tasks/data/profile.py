"""Per-column statistics of a dataset version, for people and for the advisor."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from automl_tasks.data.leakage import single_column_predictors

log = logging.getLogger(__name__)


def profile_table(frame: pd.DataFrame, target: str, task_type: str) -> dict[str, Any]:
    """Rows, columns, per-column stats, missing values and (classification) class balance."""
    columns: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        series = frame[name]
        stats: dict[str, Any] = {
            "dtype": str(series.dtype),
            "missing": int(series.isna().sum()),
            "missing_share": float(series.isna().mean()) if len(series) else 0.0,
            "distinct": int(series.nunique(dropna=True)),
        }
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            described = series.describe()
            stats.update({k: _finite(described.get(k)) for k in ("mean", "std", "min", "25%", "50%", "75%", "max")})
            stats["kind"] = "numeric"
        else:
            stats["kind"] = "categorical"
            stats["top"] = {str(k): int(v) for k, v in series.value_counts().head(10).items()}
        columns[str(name)] = stats
    profile: dict[str, Any] = {
        "rows": int(len(frame)),
        "columns": int(frame.shape[1]),
        "target": target,
        "task_type": task_type,
        "missing_cells": int(frame.isna().sum().sum()),
        "column_stats": columns,
    }
    if task_type in ("binary", "multiclass"):
        counts = frame[target].value_counts()
        profile["class_balance"] = {str(k): int(v) for k, v in counts.items()}
        profile["minority_share"] = float(counts.min() / counts.sum()) if len(counts) else 0.0
    profile["single_column_predictors"] = single_column_predictors(frame, target, task_type)
    for found in profile["single_column_predictors"]:
        log.warning(
            "column %r alone predicts %r almost perfectly (held-out score %.3f): a leak or a row index?",
            found["column"],
            target,
            found["score"],
        )
    return profile


def _finite(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return float(value)
