"""The drift check of one model family: reference vs recent window, verdict, MLflow record.

Reference = the training dataset version of the family's champion. Current = the
inference log's records of the last `window_hours` (with ground truth sent through
/feedback), or a data file given by the user. Verdict: data drift (share of drifted
columns), prediction drift, and concept drift (the champion's metric on labelled recent
rows against its score on the family's evaluation data). The report and the numbers go
to an MLflow run of the family; a drifted window is stored as a dataset version so the
retrain pipeline can read it by URI.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from automl_tasks.core.errors import DataValidationError, UserError
from automl_tasks.core.labels import LabelError, normalise_feedback_labels, version_label_spec
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    CHAMPION_VERSION_TAG,
    CURRENT_SOURCE_TAG,
    DAG_RUN_TAG,
    DATASET_URI_TAG,
    DRIFT_STATUS_TAG,
    EVAL_SCORE_TAG,
    FAMILY_TAG,
    KIND_TAG,
    LAST_CHECK_TAG,
    LAST_RESULT_TAG,
    REFERENCE_URI_TAG,
    WINDOW_URI_TAG,
)
from automl_tasks.core.tracking import ensure_experiment, mlflow_client
from automl_tasks.data import DatasetStore, read_table
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.families.aliases import CHAMPION, current_alias_version
from automl_tasks.families.evaluation import VersionModel, load_version_model, missing_columns, score_pipeline
from automl_tasks.families.loading import is_text_version
from automl_tasks.families.promotion import check_family_exists
from automl_tasks.monitoring.drift import PREDICTION_COLUMN, DriftMeasurement, drift_checks, sample_rows
from automl_tasks.monitoring.drift_settings import (
    DriftSettings,
    champion_families,
    family_settings,
)
from automl_tasks.monitoring.inference_log import read_logged_window

log = logging.getLogger(__name__)

LABEL_COLUMN = "_label"
NO_DRIFT, DRIFT, INSUFFICIENT = "no_drift", "drift", "insufficient_data"


@dataclass(frozen=True)
class DriftCheckResult:
    """The verdict of one check (JSON-able for XCom and the asset event)."""

    family: str
    status: str  # drift | no_drift | insufficient_data
    reasons: list[str]
    champion_version: str
    reference_uri: str
    current_source: str
    current_rows: int
    labelled_rows: int
    share_drifted: float | None
    drifted_columns: list[str]
    prediction_drift: bool | None
    performance: dict[str, float] | None  # champion_score, current_score, drop
    window_uri: str  # the stored current window (only when drifted), for drift_retrain
    report_path: str
    mlflow_run_id: str
    settings: dict[str, Any]
    modality: str = "table"  # "text": a large_model_adaptation family (retrained by that pipeline)

    @property
    def drift(self) -> bool:
        return self.status == DRIFT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def monitored_families(ws: Workspace, *, now: float | None = None) -> list[str]:
    """Families with a champion whose drift check is enabled and due (check_every_hours elapsed)."""
    client = mlflow_client(ws)
    now = time.time() if now is None else now
    due = []
    for family in champion_families(client):
        if family.settings is None:
            log.error("family %s: drift settings unusable, not checked: %s", family.name, family.error)
            continue
        settings = family.settings
        if settings.enabled and now - family.last_check >= settings.check_every_hours * 3600 - 60:
            due.append(family.name)
    log.info("families due for a drift check: %s", due or "none")
    return due


def _window_from_file(path: str, model: VersionModel) -> pd.DataFrame:
    frame = read_table(Path(path))
    if model.target in frame.columns:
        frame = frame.rename(columns={model.target: LABEL_COLUMN})
    return frame


def _features_or_fail(frame: pd.DataFrame, model: VersionModel, source: str) -> pd.DataFrame:
    """The model's feature columns of `frame`, typed; a missing or non-numeric column is a schema break."""
    missing = missing_columns(frame, model.schema)
    if missing:
        raise DataValidationError(source, [f"column {c!r}: rule column_exists: the champion needs it" for c in missing])
    try:
        return feature_frame(frame, model.schema)
    except (ValueError, TypeError) as exc:
        raise DataValidationError(source, [f"numeric columns {list(model.schema.input_numeric)}: {exc}"]) from None


def _canonical_predictions(served: pd.Series, model: VersionModel):
    """The logged answers (in the user's label type) in the model's canonical form, so they
    compare with the reference predictions of `model.pipeline` (e.g. True vs 1)."""
    labels = version_label_spec(model.tags)
    if labels is None or not labels.is_classification or served.isna().any():
        return served.to_numpy()
    try:
        return labels.encode(served)
    except LabelError:  # answers of another label type (an older version): compare as logged
        return served.to_numpy()


def _prediction_kind(model: VersionModel) -> str:
    return "categorical" if hasattr(model.pipeline, "classes_") else "numerical"


def _performance(model: VersionModel, current: pd.DataFrame, settings: DriftSettings) -> dict[str, float] | None:
    """Champion's metric on the labelled rows of the window vs its evaluation score."""
    if LABEL_COLUMN not in current:
        return None
    labelled = current[current[LABEL_COLUMN].notna()].rename(columns={LABEL_COLUMN: model.target})
    champion_score = model.tags.get(EVAL_SCORE_TAG)
    if len(labelled) < settings.min_labelled_rows or champion_score is None:
        return None
    labels = version_label_spec(model.tags)
    if labels is not None:  # feedback labels are JSON values in the user's type; the model predicts canonical ones
        fits = labelled[model.target].map(labels.fits).astype(bool)
        if not fits.all():
            sample = labelled.loc[~fits, model.target].head(3).tolist()
            log.warning(
                "%d feedback labels are not %s labels and are ignored, e.g. %s", (~fits).sum(), labels.kind, sample
            )
        labelled = normalise_feedback_labels(labelled[fits], model.target, labels, source="feedback labels")
        if len(labelled) < settings.min_labelled_rows:
            return None
    current_score = score_pipeline(model.pipeline, labelled, model.schema, model.target, model.metric)
    drop = model.metric.gain(float(champion_score), current_score)
    return {"champion_score": float(champion_score), "current_score": current_score, "drop": drop}


def _verdict(
    measurement: DriftMeasurement | None, performance: dict[str, float] | None, settings: DriftSettings, metric: str
) -> tuple[str, list[str]]:
    reasons: list[str] = []
    if measurement is not None and measurement.data_drift:
        reasons.append(
            f"data drift: {len(measurement.drifted_columns)} of {len(measurement.columns)} columns drifted "
            f"(share {measurement.share_drifted:.2f} >= {settings.drift_share}): {measurement.drifted_columns[:10]}"
        )
    prediction = measurement.prediction if measurement else None
    if settings.prediction_drift and prediction is not None and prediction.drifted:
        reasons.append(
            f"prediction drift: {prediction.method} {prediction.score:.3g} (threshold {prediction.threshold})"
        )
    if performance is not None and performance["drop"] > settings.performance_drop:
        reasons.append(
            f"concept drift: champion {metric} {performance['current_score']:.4g} on labelled recent rows vs "
            f"{performance['champion_score']:.4g} on evaluation data (drop {performance['drop']:.3g} > "
            f"{settings.performance_drop})"
        )
    return (DRIFT if reasons else NO_DRIFT), reasons


@dataclass(frozen=True)
class CheckedChampion:
    """What a check compares against: the family's champion, its training data, the settings."""

    family: str
    version: str
    model: VersionModel
    reference_uri: str
    settings: DriftSettings


@dataclass(frozen=True)
class Window:
    """The current window: recent rows (features, `_prediction`, `_label`) and where they came from."""

    frame: pd.DataFrame
    source: str


@dataclass(frozen=True)
class Measured:
    """The drift numbers of a window with enough rows."""

    measurement: DriftMeasurement
    performance: dict[str, float] | None  # None without enough labelled rows
    labelled_rows: int


@dataclass(frozen=True)
class Verdict:
    status: str  # drift | no_drift | insufficient_data
    reasons: list[str]


def champion_to_check(ws: Workspace, family: str, overrides: dict[str, Any] | None = None) -> CheckedChampion:
    """The family's champion and its reference data, with the family's settings merged with the form's."""
    client = mlflow_client(ws)
    check_family_exists(client, family)
    settings = family_settings(client, family).merged(overrides or {}, source="drift_check form")
    champion_version = current_alias_version(client, family, CHAMPION)
    if not champion_version:
        raise UserError(f"model family {family!r} has no champion to check for drift")
    model = load_version_model(ws, family, champion_version)
    reference_uri = model.tags.get(DATASET_URI_TAG, "")
    if not reference_uri:
        raise UserError(f"{family} v{champion_version} has no loopml.dataset_uri tag: its training data is unknown")
    return CheckedChampion(family, champion_version, model, reference_uri, settings)


def load_window(ws: Workspace, champion: CheckedChampion, *, data_path: str = "", now: float) -> Window:
    """The user's data file, or the inference log's records of the last `window_hours`."""
    if data_path:
        source = str(Path(data_path).expanduser().resolve())
        current = _window_from_file(source, champion.model)
    else:
        hours = champion.settings.window_hours
        source = f"inference log of {champion.family}, last {hours:g} h"
        current = read_logged_window(ws, champion.family, now - hours * 3600)
    log.info(
        "drift check of %s v%s: reference %s, current %s (%d rows)",
        champion.family,
        champion.version,
        champion.reference_uri,
        source,
        len(current),
    )
    return Window(current, source)


def monitored_schema(schema: FeatureSchema) -> FeatureSchema:
    """The columns drift is measured on: the raw input columns people know (a feature
    pipeline's derived columns follow from them), less timestamps and free texts, whose
    values are (nearly) all distinct, so a category test of them says nothing."""
    raw = schema.raw
    if schema.derive is None:
        return raw
    skip = set(schema.derive.datetimes) | set(schema.derive.texts)
    return FeatureSchema(
        tuple(c for c in raw.numeric if c not in skip), tuple(c for c in raw.categorical if c not in skip)
    )


def compute_drift(store: DatasetStore, champion: CheckedChampion, window: Window, report_path: Path) -> Measured | None:
    """Data and prediction drift (Evidently report at `report_path`) and the champion's
    performance on labelled rows; None when the window has fewer than `min_rows` rows."""
    settings, model, current = champion.settings, champion.model, window.frame
    if len(current) < settings.min_rows:
        return None
    current_features = _features_or_fail(current, model, window.source)
    reference = sample_rows(store.read(champion.reference_uri), settings.max_rows)
    reference_features = feature_frame(reference, model.schema)
    current_sample = sample_rows(current, settings.max_rows)
    current_features = current_features.loc[current_sample.index]
    monitored = monitored_schema(model.schema)
    ref_table = reference[list(monitored.columns)].copy()
    cur_table = current_sample[list(monitored.columns)].copy()
    ref_table[PREDICTION_COLUMN] = model.pipeline.predict(reference_features)
    cur_table[PREDICTION_COLUMN] = (
        _canonical_predictions(current_sample[PREDICTION_COLUMN], model)
        if PREDICTION_COLUMN in current_sample
        else model.pipeline.predict(current_features)
    )
    check = drift_checks()[settings.method]()  # both tables are already sampled to max_rows
    measurement = check.measure(
        ref_table,
        cur_table,
        monitored,
        drift_share=settings.drift_share,
        column_threshold=settings.column_threshold,
        prediction_kind=_prediction_kind(model),
        report_path=report_path,
    )
    labelled = int(current[LABEL_COLUMN].notna().sum()) if LABEL_COLUMN in current else 0
    return Measured(measurement, _performance(model, current, settings), labelled)


def judge(champion: CheckedChampion, window: Window, measured: Measured | None) -> Verdict:
    """Drift, no drift, or too few rows to say."""
    settings = champion.settings
    if measured is None:
        rows = len(window.frame)
        return Verdict(
            INSUFFICIENT, [f"only {rows} rows in the window; at least {settings.min_rows} needed (min_rows)"]
        )
    status, reasons = _verdict(measured.measurement, measured.performance, settings, champion.model.metric.name)
    return Verdict(status, reasons)


def keep_drifted_window(store: DatasetStore, champion: CheckedChampion, window: Window, verdict: Verdict) -> str:
    """Store a drifted window as a dataset version (labels under the target's name) for
    drift_retrain to read by URI; empty when nothing drifted."""
    if verdict.status != DRIFT:
        return ""
    current = window.frame
    kept = current.drop(columns=[c for c in current.columns if c.startswith("_") and c != LABEL_COLUMN])
    kept = kept.rename(columns={LABEL_COLUMN: champion.model.target})
    return store.put(f"{champion.family}.window", kept.reset_index(drop=True)).uri


def check_drift(
    ws: Workspace,
    family: str,
    *,
    dag_run_id: str,
    overrides: dict[str, Any] | None = None,
    data_path: str = "",
    now: float | None = None,
) -> DriftCheckResult:
    """Check `family` for drift and record the result in MLflow; see the module docstring.

    Steps: champion_to_check -> load_window -> compute_drift -> judge -> keep_drifted_window -> record_check."""
    champion = champion_to_check(ws, family, overrides)
    store = DatasetStore(ws.datasets, ws.dvc_remote)
    now = time.time() if now is None else now
    window = load_window(ws, champion, data_path=data_path, now=now)
    folder = ws.runs / "drift" / family / str(int(now))
    report_path = folder / "drift_report.html"
    measured = compute_drift(store, champion, window, report_path)
    verdict = judge(champion, window, measured)
    window_uri = keep_drifted_window(store, champion, window, verdict)
    measurement = measured.measurement if measured else None
    result = DriftCheckResult(
        family=family,
        status=verdict.status,
        reasons=verdict.reasons,
        champion_version=champion.version,
        reference_uri=champion.reference_uri,
        current_source=window.source,
        current_rows=len(window.frame),
        labelled_rows=measured.labelled_rows if measured else 0,
        share_drifted=measurement.share_drifted if measurement else None,
        drifted_columns=measurement.drifted_columns if measurement else [],
        prediction_drift=measurement.prediction.drifted if measurement and measurement.prediction else None,
        performance=measured.performance if measured else None,
        window_uri=window_uri,
        report_path=str(report_path) if measurement else "",
        mlflow_run_id="",
        settings=champion.settings.to_dict(),
        modality="text" if is_text_version(champion.model.tags) else "table",
    )
    run_id = record_check(ws, result, measurement, dag_run_id=dag_run_id, folder=folder, now=now)
    result = replace(result, mlflow_run_id=run_id)
    log.info("drift check of %s: %s%s", family, verdict.status.upper(), "".join(f"\n  - {r}" for r in verdict.reasons))
    return result


def record_check(
    ws: Workspace,
    result: DriftCheckResult,
    measurement: DriftMeasurement | None,
    *,
    dag_run_id: str,
    folder: Path,
    now: float,
) -> str:
    """The log step: an MLflow run of the family with the report, the per-column table and the
    summary numbers; the family's last-check tags; returns the run's id."""
    client = mlflow_client(ws)
    run = client.create_run(
        ensure_experiment(ws, result.family),
        run_name=f"drift_check {dag_run_id}",
        tags={
            KIND_TAG: "drift_check",
            FAMILY_TAG: result.family,
            DRIFT_STATUS_TAG: result.status,
            CHAMPION_VERSION_TAG: result.champion_version,
            REFERENCE_URI_TAG: result.reference_uri,
            CURRENT_SOURCE_TAG: result.current_source,
            DAG_RUN_TAG: dag_run_id,
            **({WINDOW_URI_TAG: result.window_uri} if result.window_uri else {}),
        },
    )
    run_id = run.info.run_id
    metrics = {"current_rows": result.current_rows, "labelled_rows": result.labelled_rows, "drift": float(result.drift)}
    if measurement is not None:
        metrics |= {
            "share_drifted": measurement.share_drifted,
            "drifted_columns": len(measurement.drifted_columns),
            "check_seconds": measurement.seconds,
        }
        if measurement.prediction is not None:
            metrics["prediction_drift_score"] = measurement.prediction.score
        for column in measurement.columns:
            client.log_param(run_id, f"drift.{column.column}"[:250], f"{column.method}={column.score:.4g}")
    if result.performance:
        metrics |= {f"performance_{k}": v for k, v in result.performance.items()}
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    folder.mkdir(parents=True, exist_ok=True)
    summary_path = folder / "drift_summary.json"
    summary_path.write_text(json.dumps({**result.to_dict(), "mlflow_run_id": run_id}, indent=2, default=str))
    client.log_artifact(run_id, str(summary_path), artifact_path="drift")
    if measurement is not None:
        client.log_artifact(run_id, measurement.report_path, artifact_path="drift")
    client.set_terminated(run_id)
    client.set_registered_model_tag(result.family, LAST_CHECK_TAG, f"{now:.0f}")
    client.set_registered_model_tag(result.family, LAST_RESULT_TAG, f"{result.status} (MLflow run {run_id})")
    return run_id
