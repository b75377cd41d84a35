"""Read a user's table (CSV or Parquet) and infer the learning task from its target."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from automl_tasks.errors import DatasetNotFoundError, DataValidationError

TASK_TYPES = ("binary", "multiclass", "regression")
_MAX_CLASSES = 50


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV or Parquet by suffix; unreadable files raise with the file named."""
    source = Path(path)
    if not source.exists():
        raise DatasetNotFoundError(f"dataset file {str(source)!r} does not exist")
    suffix = source.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            return pd.read_csv(source)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(source)
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            str(source), ["table: rule table_not_empty: the file is empty (no header, no rows)"]
        ) from None
    except Exception as exc:  # pandas/pyarrow raise many types for broken files
        raise DataValidationError(
            str(source), [f"table: rule readable: could not parse the file as {suffix[1:]}: {exc}"]
        ) from exc
    raise DatasetNotFoundError(f"dataset file {str(source)!r} has suffix {suffix!r}; expected .csv or .parquet")


def infer_task_type(target: pd.Series) -> str:
    """binary / multiclass for few distinct labels or non-numeric targets, else regression."""
    values = target.dropna()
    n_unique = values.nunique()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "binary" if n_unique <= 2 else "multiclass"
    is_integral = bool((values == values.round()).all())
    if n_unique <= 2:
        return "binary"
    if is_integral and n_unique <= _MAX_CLASSES:
        return "multiclass"
    return "regression"


def resolve_task_type(requested: str, target: pd.Series) -> str:
    """The requested task type, or the inferred one for 'auto'."""
    if requested == "auto":
        return infer_task_type(target)
    if requested not in TASK_TYPES:
        raise ValueError(f"task_type must be 'auto' or one of {TASK_TYPES}; got {requested!r}")
    return requested
