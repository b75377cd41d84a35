"""Automatic feature steps: fitted once, then applied row by row with plain NumPy/pandas.

Each step's state is JSON (exact float round trip), and `transform` reads only that state,
so training, evaluation, drift checks and serving compute the same numbers by the same
code. Every step keeps one output row per input row and depends on that row alone.

- datetime: calendar parts and days since 1970; cyclic sin/cos of month, weekday, day of
  year and hour as a group of their own (the search chooses whether to use them);
- frequency: a category's share of the fitted rows (unseen: 0), for high-cardinality columns;
- text: TF-IDF over the `TEXT_TERMS` most frequent terms, reduced to `TEXT_COMPONENTS`
  components by truncated SVD (the search chooses how many to use);
- interactions: products and ratios of numeric pairs, screened by mutual information with the
  target on the training rows; the `MAX_INTERACTIONS` best are kept in rank order (the
  search chooses how many to use). Target encoding is not here: it is fitted inside each
  model (scikit-learn's TargetEncoder, cross-fitted), see `estimators.preprocessing`.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.features.roles import parse_datetimes

SEP = "__"
#: a missing category is a category of its own, under this name (models and encoders see it)
MISSING_CATEGORY = "missing"
TEXT_TERMS = 1000
TEXT_COMPONENTS = 16
MAX_INTERACTIONS = 6
#: numeric columns (best by mutual information) whose pairs are screened
INTERACTION_PARENTS = 6
#: least gain in mutual information over the better parent for an interaction to be kept
MIN_INTERACTION_GAIN = 0.005
SCREEN_ROWS = 2000
_TOKENS = r"(?u)\b\w\w+\b"  # scikit-learn's default token pattern


# --- datetime --------------------------------------------------------------------------------


def datetime_parts(values: pd.Series, fmt: str, name: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(calendar parts, cyclic encodings) of a datetime column as float arrays, NaN where a
    value does not parse. Computed on datetime64 arrays with NumPy: pandas' `.dt` accessors
    cost ~0.05 ms each, which a served single-row request would pay seven times."""
    stamps = parse_datetimes(values, fmt).to_numpy(dtype="datetime64[ns]")
    missing = np.isnat(stamps)
    days = stamps.astype("datetime64[D]")
    years, months = days.astype("datetime64[Y]"), days.astype("datetime64[M]")
    day_number = days.astype("int64")

    def number(array: np.ndarray) -> np.ndarray:
        out = array.astype("float64")
        out[missing] = np.nan
        return out

    parts = {
        "year": number(years.astype("int64") + 1970),
        "month": number((months - years).astype("int64") + 1),
        "day": number((days - months).astype("int64") + 1),
        "dayofweek": number((day_number + 3) % 7),  # 1970-01-01 was a Thursday; Monday = 0
        "dayofyear": number((days - years).astype("int64") + 1),
        "hour": number((stamps.astype("datetime64[h]") - days).astype("int64")),
        "days": number((stamps - np.datetime64("1970-01-01", "ns")).astype("int64") / 86_400e9),
    }
    plain = {f"{name}{SEP}{k}": v for k, v in parts.items()}
    cycles = {"month": (parts["month"] - 1, 12), "dayofweek": (parts["dayofweek"], 7)}
    cycles |= {"dayofyear": (parts["dayofyear"] - 1, 366), "hour": (parts["hour"], 24)}
    cyclic = {}
    for part, (value, period) in cycles.items():
        angle = 2 * np.pi * value / period
        cyclic[f"{name}{SEP}{part}_sin"] = np.sin(angle)
        cyclic[f"{name}{SEP}{part}_cos"] = np.cos(angle)
    return plain, cyclic


# --- frequency -------------------------------------------------------------------------------


def category_key(values: pd.Series) -> pd.Series:
    """Categories as the model sees them: text, missing as "missing" (`estimators.features`)."""
    return values.astype("object").where(values.notna(), MISSING_CATEGORY).astype(str)


def fit_frequencies(values: pd.Series) -> dict[str, float]:
    """Each category's share of the rows."""
    return {str(k): float(v) for k, v in category_key(values).value_counts(normalize=True).items()}


def frequency_column(values: pd.Series, shares: dict[str, float]) -> np.ndarray:
    """Each value's share (unseen: 0); the keys as `category_key` makes them, value by value
    (a pandas map costs ~1 ms a column, paid by every served request)."""
    keys = (MISSING_CATEGORY if pd.isna(v) else str(v) for v in values.to_numpy(dtype=object))
    return np.fromiter((shares.get(k, 0.0) for k in keys), dtype="float64", count=len(values))


# --- text ------------------------------------------------------------------------------------


def fit_text(values: pd.Series, *, seed: int = 0) -> dict[str, Any]:
    """TF-IDF vocabulary, idf and SVD components of a text column (JSON state)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    text = values.fillna("").astype(str)
    tfidf = TfidfVectorizer(max_features=TEXT_TERMS, sublinear_tf=True, token_pattern=_TOKENS, dtype=np.float64)
    matrix = tfidf.fit_transform(text)
    vocabulary = sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get)
    k = max(1, min(TEXT_COMPONENTS, matrix.shape[1] - 1, matrix.shape[0] - 1))
    svd = TruncatedSVD(k, random_state=seed).fit(matrix)
    return {"terms": vocabulary, "idf": tfidf.idf_.tolist(), "components": svd.components_.tolist()}


def text_components(values: pd.Series, state: dict[str, Any], name: str) -> pd.DataFrame:
    """The text column's SVD components, computed from the JSON state alone."""
    from sklearn.feature_extraction.text import CountVectorizer

    counts = CountVectorizer(vocabulary=state["terms"], token_pattern=_TOKENS).transform(values.fillna("").astype(str))
    tf = counts.astype(np.float64)
    tf.data = np.log(tf.data) + 1.0  # sublinear tf, as TfidfVectorizer(sublinear_tf=True)
    weighted = tf.multiply(np.asarray(state["idf"]).reshape(1, -1)).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1))).ravel()
    norms[norms == 0] = 1.0
    reduced = (weighted @ np.asarray(state["components"]).T) / norms[:, None]
    columns = [f"{name}{SEP}svd{i}" for i in range(reduced.shape[1])]
    return pd.DataFrame(np.asarray(reduced), columns=columns, index=values.index)


# --- interactions ----------------------------------------------------------------------------


def interaction(a: pd.Series, b: pd.Series, op: str) -> np.ndarray:
    """a*b ("x") or a/b ("per", NaN where b is 0), as float64."""
    left, right = a.to_numpy(dtype="float64"), b.to_numpy(dtype="float64")
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # the pipeline makes inf NaN
        if op == "x":
            return left * right
        return np.where(right == 0, np.nan, left / np.where(right == 0, 1.0, right))


def interaction_name(a: str, op: str, b: str) -> str:
    return f"{a}{SEP}{op}{SEP}{b}"


def screen_interactions(
    numeric: pd.DataFrame, y: np.ndarray, task_type: str, *, seed: int = 0
) -> list[tuple[str, str, str, float]]:
    """The best (a, op, b, gain) interactions of the numeric columns on these rows, best first."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    if numeric.shape[1] < 2 or len(numeric) < 50:
        return []
    if len(numeric) > SCREEN_ROWS:
        keep = np.random.default_rng(seed).choice(len(numeric), SCREEN_ROWS, replace=False)
        numeric, y = numeric.iloc[keep], y[keep]
    score = mutual_info_regression if task_type == "regression" else mutual_info_classif

    def mi(frame: pd.DataFrame) -> np.ndarray:
        filled = frame.replace([np.inf, -np.inf], np.nan)
        filled = filled.fillna(filled.median()).fillna(0.0)
        return score(filled.to_numpy(dtype="float64"), y, random_state=seed)

    base = dict(zip(numeric.columns, mi(numeric), strict=True))
    parents = sorted(base, key=base.get, reverse=True)[:INTERACTION_PARENTS]
    candidates = {}
    for a, b in itertools.combinations(parents, 2):
        candidates[(a, "x", b)] = interaction(numeric[a], numeric[b], "x")
        candidates[(a, "per", b)] = interaction(numeric[a], numeric[b], "per")
    if not candidates:
        return []
    frame = pd.DataFrame({interaction_name(*k): v for k, v in candidates.items()}, index=numeric.index)
    gains = mi(frame)
    ranked = []
    for (a, op, b), gain in zip(candidates, gains, strict=True):
        gain = float(gain) - max(base[a], base[b])
        if gain >= MIN_INTERACTION_GAIN:
            ranked.append((a, op, b, round(gain, 5)))
    ranked.sort(key=lambda item: item[3], reverse=True)
    return ranked[:MAX_INTERACTIONS]
