"""How raw table columns become model inputs: one function used in training and serving."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

MISSING_CATEGORY = "missing"


@dataclass(frozen=True)
class FeatureSchema:
    """Which input columns are numeric and which categorical, in training order."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @classmethod
    def infer(cls, features: pd.DataFrame) -> FeatureSchema:
        numeric, categorical = [], []
        for name, dtype in features.dtypes.items():
            is_number = pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
            (numeric if is_number else categorical).append(str(name))
        return cls(tuple(numeric), tuple(categorical))

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        return cls(tuple(data["numeric"]), tuple(data["categorical"]))


def feature_frame(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Select and type the model's columns: numbers as float64, categories as text."""
    out = pd.DataFrame(index=frame.index)
    for name in schema.numeric:
        out[name] = pd.to_numeric(frame[name], errors="raise").astype("float64")
    for name in schema.categorical:
        out[name] = frame[name].astype("object").where(frame[name].notna(), MISSING_CATEGORY).astype(str)
    return out
