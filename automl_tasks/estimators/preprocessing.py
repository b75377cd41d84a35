"""Feature steps chosen by the search: imputation, scaling and categorical encoding.

Every step is a scikit-learn transformer with an ONNX conversion (see `automl_tasks.deploy`),
so a searched pipeline can always be deployed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

IMPUTATIONS = ("mean", "median", "q1", "q3")
SCALINGS = ("zscore", "minmax", "log")
#: native: integer codes the model splits on as categories where it can (LightGBM's
#: categorical splits, `estimators.tabular.make_model`), plain ordinal codes for the others
ENCODINGS = ("native", "onehot", "ordinal")


class QuantileImputer(SimpleImputer):
    """SimpleImputer that fills a column's missing values with its q-th quantile.

    It stores the quantiles in `statistics_`, so it converts to ONNX like SimpleImputer.
    """

    def __init__(self, quantile: float = 0.25) -> None:
        super().__init__(strategy="mean")
        self.quantile = quantile

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn signature
        super().fit(X, y)
        values = np.asarray(X, dtype=float)
        self.statistics_ = np.nanquantile(values, self.quantile, axis=0) if len(values) else self.statistics_
        self.statistics_ = np.where(np.isnan(self.statistics_), 0.0, self.statistics_)
        return self


class SignedLog1p(TransformerMixin, BaseEstimator):
    """sign(x) * log(1 + |x|): compresses heavy tails, defined for negative values too."""

    def fit(self, X, y=None):  # noqa: N803
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):  # noqa: N803
        values = np.asarray(X, dtype=float)
        return np.sign(values) * np.log1p(np.abs(values))


def make_imputer(kind: str) -> SimpleImputer:
    if kind in ("mean", "median"):
        return SimpleImputer(strategy=kind)
    if kind in ("q1", "q3"):
        return QuantileImputer(quantile=0.25 if kind == "q1" else 0.75)
    raise ValueError(f"imputation must be one of {IMPUTATIONS}; got {kind!r}")


def make_scaler(kind: str) -> TransformerMixin:
    scalers = {"zscore": StandardScaler, "minmax": MinMaxScaler, "log": SignedLog1p}
    if kind not in scalers:
        raise ValueError(f"scaling must be one of {SCALINGS}; got {kind!r}")
    return scalers[kind]()


def make_encoder(kind: str) -> TransformerMixin:
    if kind == "onehot":
        return OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    if kind in ("ordinal", "native"):
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    raise ValueError(f"categorical_encoding must be one of {ENCODINGS}; got {kind!r}")


def make_target_encoder(task_type: str, seed: int) -> TransformerMixin:
    """scikit-learn's TargetEncoder: cross-fitted when fitted inside a model (each row's
    encoding comes from the other folds), so a trial's scores do not see its own target."""
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.preprocessing import TargetEncoder

    splitter = KFold if task_type == "regression" else StratifiedKFold
    return TargetEncoder(
        target_type="continuous" if task_type == "regression" else "binary",
        cv=splitter(5, shuffle=True, random_state=seed),
    )


def make_preprocessor(
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    imputation: str,
    scaling: str,
    encoding: str,
    target_encoded: Sequence[str] = (),
    task_type: str = "binary",
    seed: int = 0,
) -> ColumnTransformer:
    """The preprocessing for one configuration (categoricals arrive with missing filled);
    `target_encoded` columns (high-cardinality categories) are target-encoded, last."""
    steps = []
    if numeric:
        steps.append(
            (
                "numeric",
                Pipeline([("impute", make_imputer(imputation)), ("scale", make_scaler(scaling))]),
                list(numeric),
            )
        )
    if categorical:
        steps.append(
            (
                "categorical",
                Pipeline([("encode", make_encoder(encoding))]),
                list(categorical),
            )
        )
    if target_encoded:
        steps.append(("target_encoded", make_target_encoder(task_type, seed), list(target_encoded)))
    return ColumnTransformer(steps, sparse_threshold=0.0)
