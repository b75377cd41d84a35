"""Column understanding: the role of each column of a table, and why.

Roles: numeric, categorical (low or high cardinality), datetime, text, identifier, constant
and leak. Identifier, constant and leak columns are left out of training by default (a
person may keep them); datetime and text columns get feature steps of their own
(`features.steps`). The checks are cheap (a sample of at most `SAMPLE_ROWS` rows for the
parsing tests) and general: none of them knows a column name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.data.leakage import single_column_predictors

log = logging.getLogger(__name__)

NUMERIC, CATEGORICAL, HIGH_CARDINALITY = "numeric", "categorical", "high_cardinality"
DATETIME, TEXT, IDENTIFIER, CONSTANT, LEAK = "datetime", "text", "identifier", "constant", "leak"
ROLES = (NUMERIC, CATEGORICAL, HIGH_CARDINALITY, DATETIME, TEXT, IDENTIFIER, CONSTANT, LEAK)
#: roles left out of training unless a person keeps the column
EXCLUDED_ROLES = (IDENTIFIER, CONSTANT, LEAK)

#: a categorical column with at least this many distinct values is high-cardinality
HIGH_CARDINALITY_LEVELS = 50
#: share of non-missing sampled values that must parse as dates for a datetime column
DATETIME_PARSED_SHARE = 0.95
#: a text column's values have at least this many words on average, and mostly differ
TEXT_MIN_WORDS = 3.0
TEXT_MIN_DISTINCT_SHARE = 0.3
#: |Spearman correlation| with the row index (identifier) or the target (target transform)
MONOTONE = 0.999
SAMPLE_ROWS = 2000
#: identifiers need enough rows to tell "unique per row" from chance
MIN_ROWS_FOR_IDENTIFIER = 20


@dataclass(frozen=True)
class ColumnRole:
    """A column's role and the evidence, in words."""

    column: str
    role: str
    why: str

    @property
    def excluded(self) -> bool:
        return self.role in EXCLUDED_ROLES

    def to_dict(self) -> dict[str, str]:
        return {"column": self.column, "role": self.role, "why": self.why}


def column_roles(frame: pd.DataFrame, target: str, task_type: str) -> list[ColumnRole]:
    """The role of every column but the target, in column order."""
    leaks = {found["column"]: found["score"] for found in single_column_predictors(frame, target, task_type)}
    y = frame[target] if target in frame.columns else None
    roles = []
    for name in frame.columns:
        if name == target:
            continue
        role = _role(frame[name], y, task_type, leak_score=leaks.get(str(name)))
        roles.append(ColumnRole(str(name), *role))
    return roles


def _role(series: pd.Series, y: pd.Series | None, task_type: str, *, leak_score: float | None) -> tuple[str, str]:
    present = series.dropna()
    distinct = int(present.nunique())
    if distinct == 0:
        return CONSTANT, "no value in any row"
    if distinct <= 1:
        return CONSTANT, f"{distinct} distinct value(s)"
    is_number = pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series)
    fmt = None if is_number else datetime_format(present)
    if pd.api.types.is_datetime64_any_dtype(series) or fmt is not None:
        # before the identifier check: timestamps are often unique per row
        return DATETIME, "a date/time column" if fmt is None else f"values parse as dates ({fmt or 'ISO 8601'})"
    identifier = _identifier(series, present, distinct)
    if identifier:
        return IDENTIFIER, identifier
    transform = _target_transform(series, y, task_type) if y is not None else ""
    if transform:
        return LEAK, transform
    if leak_score is not None:
        return LEAK, f"alone predicts the target almost perfectly (held-out score {leak_score:.3f})"
    if is_number:
        return NUMERIC, "numbers"
    sample = _sample(present.astype(str))
    words = float(sample.str.split().str.len().mean())
    if words >= TEXT_MIN_WORDS and distinct >= TEXT_MIN_DISTINCT_SHARE * len(present):
        return TEXT, f"free text ({words:.1f} words per value on average)"
    if distinct >= HIGH_CARDINALITY_LEVELS:
        return HIGH_CARDINALITY, f"{distinct} distinct categories"
    return CATEGORICAL, f"{distinct} distinct categories"


def _identifier(series: pd.Series, present: pd.Series, distinct: int) -> str:
    """Why the column identifies rows ("" when it does not): unique per row and either text
    codes or a dense run of integers, or numbers monotone with the row index."""
    if len(present) < MIN_ROWS_FOR_IDENTIFIER:
        return ""
    unique = distinct == len(present) and len(present) == len(series)
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric:
        values = present.to_numpy(dtype=float)
        integral = bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
        if unique and integral and values.max() - values.min() + 1 <= 1.5 * len(values):
            return "unique per row: a dense run of integers"
        if distinct >= 0.95 * len(present):
            order = pd.Series(np.arange(len(series)), index=series.index)[present.index]
            rho = present.rank().corr(order.rank())
            if abs(rho) >= MONOTONE:
                return f"monotone with the row order (Spearman {rho:.4f})"
        return ""
    if unique and not pd.api.types.is_datetime64_any_dtype(series):
        text = _sample(present.astype(str))
        if float(text.str.split().str.len().mean()) < TEXT_MIN_WORDS:
            return "unique per row: a code, not a category"
    return ""


def _target_transform(series: pd.Series, y: pd.Series, task_type: str) -> str:
    """Why the column is a deterministic transform of the target ("" when it is not)."""
    both = pd.DataFrame({"x": series, "y": y}).dropna()
    if len(both) < MIN_ROWS_FOR_IDENTIFIER:
        return ""
    if task_type == "regression":
        if not pd.api.types.is_numeric_dtype(both["x"]) or both["y"].nunique() < 3:
            return ""
        rho = both["x"].rank().corr(both["y"].rank())
        if pd.notna(rho) and abs(rho) >= MONOTONE:
            return f"a monotone transform of the target (Spearman {rho:.4f})"
        return ""
    # classification: every value of the column goes with one class, and values repeat
    # (a unique-per-row column trivially "maps" to one class each)
    x = both["x"].astype(str)
    if x.nunique() > len(both) / 2:
        return ""
    if bool((both.groupby(x)["y"].nunique() == 1).all()):
        return f"a recoding of the target ({x.nunique()} values, each with one class)"
    return ""


def datetime_format(text: pd.Series) -> str | None:
    """The format that parses the column's values as dates ("" = ISO 8601), or None when
    too few parse. Plain numbers are not dates (a year column stays numeric)."""
    sample = _sample(text.dropna().astype(str))
    if sample.empty or sample.str.fullmatch(r"[+-]?\d+(\.\d+)?").mean() > 0.5:
        return None
    if not sample.str.contains(r"[-/:.]", regex=True).all():
        return None
    from pandas.tseries.api import guess_datetime_format

    # a few values, month-first and day-first: "03/01/2022" alone cannot tell them apart
    guesses = {guess_datetime_format(v, dayfirst=first) for v in sample.iloc[:5] for first in (False, True)}
    best, share = None, 0.0
    for fmt in sorted(g or "" for g in guesses):
        parsed_share = float(parse_datetimes(sample, fmt).notna().mean())
        if parsed_share > share:
            best, share = fmt, parsed_share
    return best if share >= DATETIME_PARSED_SHARE else None


def parse_datetimes(values: pd.Series, fmt: str) -> pd.Series:
    """Values as naive UTC timestamps (NaT where they do not parse), with a fixed format so
    that one served row parses exactly as the training table did."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype("string")
        parsed = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce", utc=True)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def _sample(values: pd.Series) -> pd.Series:
    return values.sample(SAMPLE_ROWS, random_state=0) if len(values) > SAMPLE_ROWS else values


def roles_summary(roles: list[ColumnRole], kept: tuple[str, ...] = ()) -> dict[str, Any]:
    """The roles as the profile stores them, with what is left out of training and why."""
    excluded = [r.to_dict() for r in roles if r.excluded and r.column not in kept]
    for role in excluded:
        log.warning("column %r is left out of training: %s (%s)", role["column"], role["role"], role["why"])
    return {"columns": [r.to_dict() for r in roles], "excluded": excluded, "kept": list(kept)}
