"""Drift retraining: new data in, a challenger of the same family out, then the gate.

Steps (each a task of the drift_retrain DAG):
1. `prepare_retrain_data`: read the recent labelled rows (the drift check's stored
   window or a file), check them against the champion's schema and with Great
   Expectations, hold part of them out as fresh evaluation data, and store the training
   table (reference + recent, or recent only) as a new DVC version of the champion's
   dataset. Nothing is written before the checks pass: a schema break leaves the
   dataset store, the registry and the serving champion as they were.
2. `plan_retrain_search`: a study over the parent study's search space (or the form's)
   whose first trials are the parent study's best configurations.
3. the usual workers and task estimator (registered as `challenger`, lineage to the
   champion), then `gate_on_recent_data`: champion and challenger are both scored on
   the held-out recent rows, which become the family's evaluation data, and the gate
   decides.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import DataValidationError, UserError
from automl_tasks.core.labels import LabelSpec, normalise_feedback_labels, version_label_spec
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    BASELINE_SCORE_TAG,
    BASELINE_URI_TAG,
    DATASET_URI_TAG,
    EVAL_CANDIDATE_URI_TAG,
    EVAL_HISTORY_TAG,
    EVAL_SCORE_TAG,
    EVAL_URI_TAG,
    METRIC_TAG,
    PARENT_STUDY_TAG,
    PARENT_VERSION_TAG,
    PREVIOUS_EVAL_SCORE_TAG,
    REFERENCE_URI_TAG,
    RETRAIN_REASON_TAG,
    STUDY_TAG,
    TARGET_TAG,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.data import DatasetStore, parse_dataset_uri, read_table, validate_table
from automl_tasks.estimators.metrics import Metric
from automl_tasks.families.aliases import CHAMPION, current_alias_version
from automl_tasks.families.evaluation import load_version_model, missing_columns, score_version, trivial_baseline_score
from automl_tasks.families.promotion import GateConfig, check_family_exists, family_lock, promote
from automl_tasks.pipelines.intake import (
    FeatureRequest,
    PipelineRunSpec,
    PreprocessResult,
    make_feature_pipeline,
    open_pipeline_run,
)
from automl_tasks.pipelines.requests import RetrainRequest
from automl_tasks.search import start_search
from automl_tasks.search.formatter import add_feature_params
from automl_tasks.search.plan import build_plan
from automl_tasks.search.storage import open_study
from automl_tasks.search_space import load_search_space

log = logging.getLogger(__name__)

MIN_LABELLED_ROWS = 20


def _recent_rows(ws: Workspace, request: RetrainRequest) -> tuple[pd.DataFrame, str]:
    if request.window_uri:
        return DatasetStore(ws.datasets, ws.dvc_remote).read(request.window_uri), request.window_uri
    path = str(Path(request.data_path).expanduser().resolve())
    return read_table(Path(path)), path


def _check_schema(recent: pd.DataFrame, reference: pd.DataFrame, model: Any, source: str) -> None:
    """Refuse recent rows that the champion's schema cannot read, naming each column."""
    failures = [
        f"column {c!r}: rule column_exists: the model family needs it"
        for c in missing_columns(recent, model.schema, model.target)
    ]
    for column in model.schema.input_numeric:
        if column in recent and not pd.api.types.is_numeric_dtype(recent[column]):
            bad = pd.to_numeric(recent[column], errors="coerce").isna() & recent[column].notna()
            if bad.any():
                sample = recent.loc[bad, column].astype(str).head(3).tolist()
                failures.append(f"column {column!r}: rule numeric: expected numbers as in the reference; got {sample}")
    if model.target in recent and model.target in reference:
        known = set(reference[model.target].dropna().unique())
        if hasattr(model.pipeline, "classes_"):
            unseen = sorted(set(recent[model.target].dropna().unique()) - known, key=str)
            if unseen:
                log.warning("recent rows have target classes the reference lacks: %s", unseen[:10])
    if failures:
        raise DataValidationError(source, failures)


def _split_recent(labelled: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(labelled))
    n_eval = max(1, int(round(fraction * len(labelled))))
    return labelled.iloc[order[n_eval:]], labelled.iloc[order[:n_eval]]


@dataclass(frozen=True)
class RetrainIntake(PreprocessResult):
    """The intake result of a retrain: the new dataset version, plus the champion it
    replaces, that champion's study and the held-out recent rows the gate scores on."""

    parent_version: str
    parent_study: str
    eval_uri: str
    reference_uri: str


def prepare_retrain_data(ws: Workspace, request: RetrainRequest, *, dag_run_id: str) -> RetrainIntake:
    """Validate, combine and version the retraining data; open the run's MLflow parent run."""
    client = mlflow_client(ws)
    check_family_exists(client, request.family)
    parent_version = current_alias_version(client, request.family, CHAMPION)
    if not parent_version:
        raise UserError(f"model family {request.family!r} has no champion to retrain")
    model = load_version_model(ws, request.family, parent_version)
    reference_uri = model.tags.get(DATASET_URI_TAG, "")
    parent_study = model.tags.get(STUDY_TAG, "")
    if not reference_uri or not parent_study:
        raise UserError(f"{request.family} v{parent_version} lacks its dataset or study tags; cannot retrain it")
    store = DatasetStore(ws.datasets, ws.dvc_remote)
    reference = store.read(reference_uri)
    recent, source = _recent_rows(ws, request)
    _check_schema(recent, reference, model, source)

    columns = list(model.schema.input_columns) + [model.target]
    _, plan = open_study(ws, parent_study)
    # labels that came back through /feedback are JSON values (and NaN-padded floats when
    # part of the window is unlabelled): put them, and the reference, in the champion's
    # canonical label form before they meet (issue #18; see automl_tasks.core.labels)
    labels = version_label_spec(model.tags) or LabelSpec.infer(reference[model.target], plan.data.task_type)
    labelled = normalise_feedback_labels(recent[columns], model.target, labels, source=source)
    reference = normalise_feedback_labels(reference, model.target, labels, source=reference_uri)
    if labels.is_classification:
        labels = labels.with_classes(labels.decode(labelled[model.target]))
    if len(labelled) < MIN_LABELLED_ROWS:
        raise DataValidationError(
            source,
            [
                f"column {model.target!r}: rule enough_labels: {len(labelled)} labelled rows; at least {MIN_LABELLED_ROWS} needed"
            ],
        )
    labelled = labelled.astype(
        {c: reference[c].dtype for c in columns if c in model.schema.input_numeric}, errors="ignore"
    )
    train_recent, eval_recent = _split_recent(labelled, request.eval_fraction, request.seed)
    parts = [reference[columns], train_recent] if request.combine == "reference_plus_recent" else [train_recent]
    combined = pd.concat(parts, ignore_index=True)
    validate_table(combined, source=source, target=model.target, task_type=plan.data.task_type)
    validate_table(
        eval_recent,
        source=f"{source} (held-out rows)",
        target=model.target,
        task_type=plan.data.task_type,
        to_split=False,
    )

    wanted = retrain_features(model, request)
    features = (
        make_feature_pipeline(ws, combined, model.target, plan.data.task_type, wanted) if wanted is not None else None
    )
    dataset_name, _ = parse_dataset_uri(reference_uri)
    stored = store.put(dataset_name, combined)
    eval_uri = store.put(f"{request.family}.eval", eval_recent.reset_index(drop=True)).uri
    log.info(
        "retraining data %s: %s (%d reference + %d recent rows); %d recent rows held out as %s",
        stored.uri,
        request.combine,
        len(reference) if request.combine == "reference_plus_recent" else 0,
        len(train_recent),
        len(eval_recent),
        eval_uri,
    )
    run = PipelineRunSpec(
        family=request.family,
        target=model.target,
        task_type=plan.data.task_type,
        metric=model.metric.name,
        source=source,
        run_name=f"drift_retrain {dag_run_id}",
        dag_run_id=dag_run_id,
        params={"combine": request.combine, "n_trials": request.n_trials, "n_workers": request.n_workers},
        tags={
            PARENT_VERSION_TAG: parent_version,
            PARENT_STUDY_TAG: parent_study,
            REFERENCE_URI_TAG: reference_uri,
            EVAL_CANDIDATE_URI_TAG: eval_uri,
            RETRAIN_REASON_TAG: request.reason[:4900],
        },
        labels=labels,
        features=features,
    )
    result = open_pipeline_run(ws, combined, stored, run)
    return RetrainIntake(
        **asdict(result),  # the local paths too: this process made them
        parent_version=parent_version,
        parent_study=parent_study,
        eval_uri=eval_uri,
        reference_uri=reference_uri,
    )


#: the retrain form's `feature_pipeline` value that fits a new pipeline instead of reusing one
NEW_FEATURE_PIPELINE = "new"


def retrain_features(model: Any, request: RetrainRequest) -> FeatureRequest | None:
    """The retrain's feature pipeline: the champion's version unless the form names another
    (or 'new': fitted on the retraining table, with sentence embeddings of its texts when the
    champion reads them); None when the champion reads raw columns and the form asks for nothing."""
    derive = model.schema.derive
    if request.feature_pipeline == NEW_FEATURE_PIPELINE:
        return FeatureRequest(seed=request.seed, embed_text=derive is not None and bool(derive.embeddings))
    if request.feature_pipeline:
        return FeatureRequest(reuse=request.feature_pipeline)
    return FeatureRequest(reuse=derive.lineage_version) if derive is not None else None


def plan_retrain_search(ws: Workspace, request: RetrainRequest, pre: RetrainIntake, study_name: str) -> dict[str, Any]:
    """A study on the new data, warm-started from the parent study (same space unless the form changes it)."""
    _, parent = open_study(ws, pre.parent_study)
    space_yaml = request.search_space or parent.space_yaml
    if request.feature_pipeline:  # another pipeline than the champion's: search its feature groups
        space_yaml = add_feature_params(space_yaml, pre.feature_pipeline_path, pre.task_type)
    space = load_search_space(space_yaml)
    plan = build_plan(
        study_name,
        pre,
        metric=parent.metric,
        space=space,
        space_yaml=space_yaml,
        n_trials=request.n_trials,
        n_workers=request.n_workers,
        time_budget_s=request.time_budget_s,
        seed=request.seed,
        strategy=parent.strategy,
        algorithm=parent.algorithm,
        resources=parent.resources,
    )
    same_space = space.hash == parent.space_hash
    if not same_space:
        log.info("the form changes the search space (hash %s -> %s): no warm start", parent.space_hash, space.hash)
    return start_search(ws.optuna_uri, plan, space, warm_start_study=pre.parent_study if same_space else None)


def _record_baseline(ws: Workspace, client: Any, family: str, version: str, frame: pd.DataFrame, eval_uri: str) -> None:
    """The trivial baseline (fitted on the version's training table) on the new evaluation
    data, recorded on the version so the gate can refuse a model that does not beat it."""
    tags = client.get_model_version(family, version).tags
    target, metric = tags.get(TARGET_TAG, "target"), Metric(tags.get(METRIC_TAG, "roc_auc"))
    if not tags.get(DATASET_URI_TAG) or not tags.get(STUDY_TAG) or target not in frame.columns:
        return
    _, plan = open_study(ws, tags[STUDY_TAG])
    train = DatasetStore(ws.datasets, ws.dvc_remote).read(tags[DATASET_URI_TAG])[target].dropna().to_numpy()
    baseline = trivial_baseline_score(train, frame, target, metric, plan.data.task_type)
    if baseline is not None:
        client.set_model_version_tag(family, version, BASELINE_SCORE_TAG, f"{baseline:.8g}")
        client.set_model_version_tag(family, version, BASELINE_URI_TAG, eval_uri)


def gate_on_recent_data(
    ws: Workspace, family: str, version: str, eval_uri: str, *, gate: GateConfig, triggered_by: str
) -> dict[str, Any]:
    """Make the held-out recent rows the family's evaluation data, score champion and
    challenger on them, and let the promotion gate decide."""
    client = mlflow_client(ws)
    frame = DatasetStore(ws.datasets, ws.dvc_remote).read(eval_uri)
    with family_lock(ws, family):
        champion = current_alias_version(client, family, CHAMPION)
        scores = {}
        for candidate in dict.fromkeys(v for v in (champion, version) if v):
            scores[candidate] = score_version(load_version_model(ws, family, candidate), frame)
            old = client.get_model_version(family, candidate).tags
            if old.get(EVAL_SCORE_TAG) and old.get(EVAL_URI_TAG) != eval_uri:
                record = f"{old[EVAL_SCORE_TAG]} on {old.get(EVAL_URI_TAG)}"
                client.set_model_version_tag(family, candidate, PREVIOUS_EVAL_SCORE_TAG, record)
            client.set_model_version_tag(family, candidate, EVAL_SCORE_TAG, f"{scores[candidate]:.8g}")
            client.set_model_version_tag(family, candidate, EVAL_URI_TAG, eval_uri)
        _record_baseline(ws, client, family, version, frame, eval_uri)
        model = client.get_registered_model(family)
        history = json.loads(model.tags.get(EVAL_HISTORY_TAG, "[]"))
        previous = model.tags.get(EVAL_URI_TAG)
        if previous and previous != eval_uri:
            history.append(previous)
        client.set_registered_model_tag(family, EVAL_HISTORY_TAG, json.dumps(history[-50:]))
        client.set_registered_model_tag(family, EVAL_URI_TAG, eval_uri)
    log.info("family %s evaluation data is now %s; scores on it: %s", family, eval_uri, scores)
    decision = promote(ws, family, version, mode="auto", triggered_by=triggered_by, config=gate)
    return {**decision, "eval_uri": eval_uri, "scores": scores}
