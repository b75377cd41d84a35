"""Measure drift between a reference table and a current window with Evidently.

Data drift: one statistical test per input column (Evidently picks the test from the
column type and size) and the share of drifted columns. Prediction drift: the same test
on the model's predictions. Concept drift is measured by the caller (it needs the
model); this module only compares distributions and writes the HTML report.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from automl_tasks.estimators.features import FeatureSchema

log = logging.getLogger(__name__)

PREDICTION_COLUMN = "_prediction"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's test: Evidently's method, its score and threshold, and the verdict."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftMeasurement:
    """What the distributions say (no model involved)."""

    columns: list[ColumnDrift]
    drift_share: float  # the threshold that was used
    share_drifted: float
    data_drift: bool
    prediction: ColumnDrift | None
    reference_rows: int
    current_rows: int
    sampled: bool
    seconds: float
    report_path: str

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["drifted_columns"] = self.drifted_columns
        return payload


def _is_drifted(method: str, score: float, threshold: float) -> bool:
    """Evidently's rule: p-value tests drift below the threshold, distances at or above it."""
    return score < threshold if "p_value" in method else score >= threshold


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """At most `max_rows` rows, drawn without replacement with a fixed seed (so reruns agree)."""
    return frame if len(frame) <= max_rows else frame.sample(n=max_rows, random_state=seed)


def measure_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: FeatureSchema,
    *,
    drift_share: float,
    report_path: Path,
    column_threshold: float | None = None,
    prediction_kind: str | None = None,  # "categorical" | "numerical" | None (no prediction columns)
    max_rows: int = 100_000,
) -> DriftMeasurement:
    """Run Evidently's data-drift tests (and prediction drift when both tables carry
    `_prediction`) and save the HTML report at `report_path`."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    sampled = len(reference) > max_rows or len(current) > max_rows
    reference, current = sample_rows(reference, max_rows), sample_rows(current, max_rows)
    columns = list(schema.columns)
    numerical, categorical = list(schema.numeric), list(schema.categorical)
    metrics: list[Any] = [DataDriftPreset(columns=columns, drift_share=drift_share, threshold=column_threshold)]
    with_prediction = prediction_kind is not None and PREDICTION_COLUMN in reference and PREDICTION_COLUMN in current
    keep = columns + ([PREDICTION_COLUMN] if with_prediction else [])
    if with_prediction:
        (categorical if prediction_kind == "categorical" else numerical).append(PREDICTION_COLUMN)
        metrics.append(ValueDrift(column=PREDICTION_COLUMN, threshold=column_threshold))
    # text columns: Evidently's text content drift (a classifier told to tell the windows apart)
    definition = DataDefinition(
        numerical_columns=numerical, categorical_columns=categorical, text_columns=list(schema.text) or None
    )
    snapshot = Report(metrics).run(
        Dataset.from_pandas(_typed(current[keep], categorical), data_definition=definition),
        Dataset.from_pandas(_typed(reference[keep], categorical), data_definition=definition),
    )
    results: dict[str, ColumnDrift] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            method, threshold, score = config["method"], float(config["threshold"]), float(metric["value"])
            results[config["column"]] = ColumnDrift(
                config["column"], method, score, threshold, _is_drifted(method, score, threshold)
            )
    report_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(report_path))
    per_column = [results[c] for c in columns if c in results]
    share = sum(c.drifted for c in per_column) / max(1, len(per_column))
    measurement = DriftMeasurement(
        columns=per_column,
        drift_share=drift_share,
        share_drifted=share,
        data_drift=share >= drift_share,
        prediction=results.get(PREDICTION_COLUMN) if with_prediction else None,
        reference_rows=len(reference),
        current_rows=len(current),
        sampled=sampled,
        seconds=time.perf_counter() - started,
        report_path=str(report_path),
    )
    log.info(
        "drift: %d of %d columns drifted (share %.2f, threshold %.2f)%s; %.1fs",
        sum(c.drifted for c in per_column),
        len(per_column),
        share,
        drift_share,
        f"; prediction {measurement.prediction.method}={measurement.prediction.score:.3g}"
        if measurement.prediction
        else "",
        measurement.seconds,
    )
    return measurement


def _typed(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categorical columns as text so Evidently compares categories, not numbers."""
    out = frame.copy()
    for column in categorical:
        out[column] = out[column].astype("object").where(out[column].notna(), None).astype(str)
    return out


class DriftCheck(ABC):
    """A way of measuring drift between a reference table and a current window.

    `measure` compares the columns of `schema` (and `_prediction` when both tables carry
    it and `prediction_kind` is given), writes a human-readable report at `report_path`
    and returns a `DriftMeasurement`. Contract: `automl_tasks.testing.check_drift_check`.
    """

    name: ClassVar[str]

    @abstractmethod
    def measure(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        schema: FeatureSchema,
        *,
        drift_share: float,
        report_path: Path,
        column_threshold: float | None = None,
        prediction_kind: str | None = None,
    ) -> DriftMeasurement:
        """Measure drift of `current` against `reference`."""


class EvidentlyDriftCheck(DriftCheck):
    """Evidently's per-column tests (the built-in drift check; see `measure_drift`)."""

    name = "evidently"

    def __init__(self, max_rows: int = 100_000) -> None:
        self.max_rows = max_rows

    def measure(
        self, reference: pd.DataFrame, current: pd.DataFrame, schema: FeatureSchema, **options: Any
    ) -> DriftMeasurement:
        return measure_drift(reference, current, schema, **options, max_rows=self.max_rows)


BUILTIN_DRIFT_CHECKS: dict[str, type[DriftCheck]] = {EvidentlyDriftCheck.name: EvidentlyDriftCheck}


def drift_checks() -> dict[str, type[DriftCheck]]:
    """Every drift check by name: the built-in one and those of installed packages
    (entry point group `loopml.drift_checks`); a family's `method` setting picks one."""
    from automl_tasks.core.plugins import installed_classes
    from automl_tasks.core.tags import DRIFT_CHECKS_ENTRY_POINT_GROUP

    installed = installed_classes(DRIFT_CHECKS_ENTRY_POINT_GROUP, DriftCheck, BUILTIN_DRIFT_CHECKS, "drift check")
    return {**BUILTIN_DRIFT_CHECKS, **installed}
