"""How raw table columns become model inputs: one function used in training and serving."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.features.pipeline import NUMBER_INPUT, FeaturePipeline
from automl_tasks.features.steps import MISSING_CATEGORY

__all__ = ["MISSING_CATEGORY", "FeatureSchema", "feature_frame"]


@dataclass(frozen=True)
class FeatureSchema:
    """Which input columns are numeric, categorical and free text, in training order
    (text: a text family's column, read by its tokenizer; tables have none).

    `derive`: the feature pipeline (issue #15) that makes these columns from the raw input
    columns a person gives; `feature_frame` applies it, so every reader of a version's
    schema (serving, evaluation, drift checks) takes raw rows. None: the columns are raw."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    text: tuple[str, ...] = ()
    derive: FeaturePipeline | None = field(default=None, compare=False)
    #: the model names of a schema cut from another (`graph_fed`): its columns keep the
    #: names the full schema gave them (None: computed from `columns`)
    names: dict[str, str] | None = field(default=None, compare=False, repr=False)

    @property
    def input_numeric(self) -> tuple[str, ...]:
        """The raw input columns that take numbers."""
        if self.derive is None:
            return self.numeric
        return tuple(c for c, kind in self.derive.inputs.items() if kind == NUMBER_INPUT)

    @property
    def input_categorical(self) -> tuple[str, ...]:
        """The raw input columns that take any value (categories, dates, texts)."""
        if self.derive is None:
            return self.categorical
        return tuple(c for c, kind in self.derive.inputs.items() if kind != NUMBER_INPUT)

    @property
    def ignored_inputs(self) -> tuple[str, ...]:
        """Columns a row may carry and the model ignores: those the feature pipeline left out
        (identifiers, constants, leaks), so a client may send the table's whole row."""
        return self.derive.excluded if self.derive is not None else ()

    @property
    def raw(self) -> FeatureSchema:
        """The schema of the raw input columns (this schema when there is no pipeline): what
        requests, drift checks and retraining windows are checked against."""
        if self.derive is None:
            return self
        return FeatureSchema(self.input_numeric, self.input_categorical)

    @property
    def without_pipeline(self) -> FeatureSchema:
        """This schema for rows that already hold the derived columns."""
        return FeatureSchema(self.numeric, self.categorical, self.text, names=self.names)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The raw columns a row must carry (in table order when derived)."""
        if self.derive is None:
            return self.columns
        return tuple(self.derive.inputs)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical + self.text

    @property
    def graph_fed(self) -> FeatureSchema:
        """The schema of what an exported ONNX graph is fed: the graph computes the feature
        pipeline's frequency and interaction columns itself
        (`estimators.onnx.feature_steps`), from inputs it is fed anyway."""
        computed = set(self.derive.graph_steps) if self.derive is not None else set()
        if not computed & set(self.numeric):
            return self
        return FeatureSchema(
            tuple(c for c in self.numeric if c not in computed),
            self.categorical,
            self.text,
            self.derive.without_graph_steps(),
            names=self.model_names,
        )

    @property
    def model_names(self) -> dict[str, str]:
        """Original column -> the name the model and its ONNX graph use ([A-Za-z0-9_], unique)."""
        if self.names is not None:
            return self.names
        out: dict[str, str] = {}
        used: set[str] = set()
        for column in self.columns:
            base = re.sub(r"[^A-Za-z0-9_]", "_", column) or "column"
            name, k = base, 1
            while name in used:
                name, k = f"{base}_{k}", k + 1
            used.add(name)
            out[column] = name
        return out

    @property
    def model_numeric(self) -> tuple[str, ...]:
        names = self.model_names
        return tuple(names[c] for c in self.numeric)

    @property
    def model_categorical(self) -> tuple[str, ...]:
        names = self.model_names
        return tuple(names[c] for c in self.categorical)

    @classmethod
    def infer(cls, features: pd.DataFrame) -> FeatureSchema:
        numeric, categorical = [], []
        for name, dtype in features.dtypes.items():
            is_number = pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
            (numeric if is_number else categorical).append(str(name))
        return cls(tuple(numeric), tuple(categorical))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"numeric": list(self.numeric), "categorical": list(self.categorical)}
        if self.derive is not None:
            out["feature_pipeline"] = self.derive.to_dict()
        return out | ({"text": list(self.text)} if self.text else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        derive = FeaturePipeline.from_dict(data["feature_pipeline"]) if data.get("feature_pipeline") else None
        return cls(tuple(data["numeric"]), tuple(data["categorical"]), tuple(data.get("text", ())), derive)


def feature_frame(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Select, rename (`schema.model_names`) and type the model's columns:
    numbers as float64, categories as text with missing values as a category of their own.
    Raw rows go through the schema's feature pipeline first, when it has one.

    Built as one dict of arrays: assigning columns one by one costs ~0.3 ms each, which
    dominated single-row serving latency.
    """
    if schema.derive is not None and not schema.derive.passthrough:
        frame = schema.derive.transform(frame)
    names = schema.model_names
    data: dict[str, np.ndarray] = {}
    if schema.numeric:
        numeric = frame[list(schema.numeric)]
        if not all(pd.api.types.is_numeric_dtype(t) for t in numeric.dtypes):
            numeric = numeric.apply(pd.to_numeric, errors="raise")
        values = numeric.to_numpy(dtype="float64")
        for i, name in enumerate(schema.numeric):
            data[names[name]] = values[:, i]
    for name in schema.categorical:
        column = frame[name].astype("object")
        data[names[name]] = np.where(column.isna(), MISSING_CATEGORY, column.astype(str)).astype(object)
    for name in schema.text:
        data[names[name]] = frame[name].astype(str).to_numpy(dtype=object)
    return pd.DataFrame(data, index=frame.index)
