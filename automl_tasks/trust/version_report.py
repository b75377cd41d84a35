"""The trust report of any registered version (the `trust_report` DAG).

The pipelines measure a new version's report in their task estimator, on the model the
test score belongs to. This measures one for a version registered earlier (or again): its
native pipeline, its logged feature schema and its dataset version, split again as its
search split it (the study's seed). The training rows are the ones the version was fitted
on (`loopml.fit_rows`); when that is every row (the refit), no row is left that it never
saw, so the membership attack is skipped with that reason and noise and attacks run on the
test split, which the report then says the model has seen.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from automl_tasks.core.errors import UserError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    ALGORITHM_TAG,
    DATASET_URI_TAG,
    FIT_ROWS_TAG,
    KIND_TAG,
    MODEL_VERSION_TAG,
    STUDY_TAG,
    TRIGGERED_BY_TAG,
    TRUST_DP_EPSILON_TAG,
    TRUST_RUN_TAG,
    tag_number,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.estimators import TABULAR_ESTIMATOR
from automl_tasks.estimators.tabular import ALL_ROWS
from automl_tasks.trust.report import MEMBERSHIP, PLOT_FILE, REPORT_FILE, measure_trust
from automl_tasks.trust.subject import TABLE, Rows, TrustSubject

log = logging.getLogger(__name__)


def _version(client: Any, family: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    from automl_tasks.families.promotion import check_family_exists

    check_family_exists(client, family)
    try:
        if version.isdigit():
            return client.get_model_version(family, version)
        return client.get_model_version_by_alias(family, version)
    except MlflowException:
        known = sorted((int(v.version) for v in client.search_model_versions(f"name='{family}'")), reverse=True)
        raise UserError(f"family {family!r} has no version or alias {version!r}; its versions: {known[:20]}") from None


def version_subject(ws: Workspace, family: str, version: str) -> tuple[TrustSubject, dict[str, str], Any]:
    """(subject, parts skipped because of how the version was made, the MLflow ModelVersion)."""
    from automl_tasks.data import DatasetStore
    from automl_tasks.data.splits import make_splits
    from automl_tasks.estimators.features import feature_frame
    from automl_tasks.families.evaluation import load_version_model
    from automl_tasks.families.loading import is_text_version
    from automl_tasks.search.storage import open_study

    client = mlflow_client(ws)
    mv = _version(client, family, version)
    tags = dict(mv.tags)
    if is_text_version(tags):
        raise NotImplementedError(
            "the DAG measures tabular versions; a text version's report is the one large_model_adaptation "
            "measured on its adapted model (its served ONNX graph has no gradients to attack)"
        )
    algorithm = tags.get(ALGORITHM_TAG, TABULAR_ESTIMATOR)
    if algorithm != TABULAR_ESTIMATOR and not algorithm.endswith(":TabularEstimator"):
        raise NotImplementedError(
            f"the DAG measures tabular versions; a {algorithm} version keeps its ONNX graph only (no network to "
            "attack): its report is the one its pipeline measured at registration (loopml.trust.* tags)"
        )
    if not tags.get(STUDY_TAG) or not tags.get(DATASET_URI_TAG):
        raise NotImplementedError(f"{family} v{mv.version} records no study or dataset, so its rows are unknown")
    model = load_version_model(ws, family, str(mv.version))
    _, plan = open_study(ws, tags[STUDY_TAG])
    frame = DatasetStore(ws.datasets, ws.dvc_remote).read(tags[DATASET_URI_TAG])
    target = frame[model.target]
    splits = make_splits(target, plan.data.task_type, seed=plan.data.split_seed)
    features = feature_frame(frame, model.schema)
    y = target.to_numpy()
    fit_rows = tags.get(FIT_ROWS_TAG, "train+valid")
    skipped: dict[str, str] = {}
    members = np.arange(len(y)) if fit_rows == ALL_ROWS else np.concatenate([splits.train, splits.valid])
    if fit_rows == ALL_ROWS:
        skipped[MEMBERSHIP] = (
            "the version was refit on every row of its dataset, so no row is left that it never saw; "
            "the pipeline's trust report measured the attack on the model its test score belongs to"
        )
    classify = plan.data.task_type != "regression"
    pipeline = model.pipeline
    subject = TrustSubject(
        model_kind=f"{family} v{mv.version}",
        kind=TABLE,
        task_type=plan.data.task_type,
        metric=model.metric,
        members=Rows(features.iloc[members], y[members]),
        held_out=Rows(features.iloc[splits.test], y[splits.test]),
        predict=pipeline.predict,
        predict_proba=pipeline.predict_proba if classify else None,
        classes=getattr(pipeline, "classes_", None),
        numeric=model.schema.model_numeric,
        categorical=model.schema.model_categorical,
        dp_epsilon=tag_number(tags.get(TRUST_DP_EPSILON_TAG)),  # recorded when it was registered
    )
    return subject, skipped, mv


def report_version(ws: Workspace, family: str, version: str, *, triggered_by: str = "") -> dict[str, Any]:
    """Measure, log (an MLflow run, model metrics of the version, version tags) and summarise."""
    import mlflow

    from automl_tasks.core.tracking import ensure_experiment
    from automl_tasks.families.artifacts import model_id_of

    try:
        subject, skipped, mv = version_subject(ws, family, version)
    except NotImplementedError as exc:
        raise UserError(f"no trust report for {family} {version}: {exc}") from None
    report = measure_trust(subject, skip=skipped)
    metrics = report.metrics()
    client = mlflow_client(ws)
    with mlflow.start_run(
        experiment_id=ensure_experiment(ws, family),
        run_name=f"trust_report {family} v{mv.version}",
        tags={KIND_TAG: "trust_report", MODEL_VERSION_TAG: f"{family}/{mv.version}", TRIGGERED_BY_TAG: triggered_by},
    ) as run:
        mlflow.log_metrics(metrics, model_id=model_id_of(mv))  # None: on the run alone
        mlflow.log_text(report.to_json(), f"trust/{REPORT_FILE}")
        plot = ws.runs / "trust_reports" / f"{family}-{mv.version}-{PLOT_FILE}"
        plot.parent.mkdir(parents=True, exist_ok=True)
        mlflow.log_artifact(str(report.plot(plot)), artifact_path="trust")
    for key, value in {**report.tags(), TRUST_RUN_TAG: run.info.run_id}.items():
        client.set_model_version_tag(family, mv.version, key, value)
    return {
        "family": family,
        "version": str(mv.version),
        "run_id": run.info.run_id,
        "summary": report.summary(),
        "metrics": metrics,
        "skipped": report.skipped,
    }
