"""Active learning, the data-centric loop: pick the rows the champion is least sure of, let a
person label them, and turn the labels into a dataset version that drift_retrain learns from.

Each labelling batch is a dataset version (`<family>.labelling`) and an MLflow run of the
family (kind `labelling_batch`) that records how it was chosen and, once labelled, the
labelled dataset version (`<family>.labelled`: the champion's columns plus the target),
which is what drift_retrain takes as its recent window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import ConfigurationError, DataValidationError, UserError
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    DATASET_URI_TAG,
    FAMILY_TAG,
    KIND_TAG,
    LABELLED_BY_TAG,
    LABELLED_URI_TAG,
    LABELLING_STRATEGY_TAG,
    MODEL_VERSION_TAG,
    TARGET_TAG,
)
from automl_tasks.core.tracking import ensure_experiment, mlflow_client
from automl_tasks.data import DatasetStore, read_table
from automl_tasks.data.versioning import DATASET_URI_PREFIX

log = logging.getLogger(__name__)

STRATEGIES = ("entropy", "margin", "random")
BATCH_KIND = "labelling_batch"
ROW_COLUMN = "_pool_row"  # a batch row's position in its pool
UNCERTAINTY_COLUMN = "_uncertainty"  # how unsure the champion was of it (higher: less sure)
#: with `diversity`, rows are spread over this many times the batch's most uncertain rows
DIVERSITY_POOL_FACTOR = 3


def uncertainty(proba: np.ndarray, strategy: str) -> np.ndarray:
    """How unsure a classifier is of each row (higher: less sure): the entropy of its class
    probabilities, or one minus the margin between its two most likely classes."""
    p = np.clip(np.asarray(proba, dtype=float), 1e-12, 1.0)
    if strategy == "entropy":
        return -(p * np.log(p)).sum(axis=1)
    if strategy == "margin":
        top = np.sort(p, axis=1)[:, ::-1]
        return 1.0 - (top[:, 0] - top[:, 1])
    raise ConfigurationError(f"uncertainty strategy must be entropy or margin; got {strategy!r}")


def choose_rows(
    proba: np.ndarray | None,
    features: np.ndarray,
    k: int,
    strategy: str,
    *,
    diversity: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the `k` rows to label: at random, or the most uncertain; with `diversity`,
    spread by greedy farthest-point selection over the most uncertain rows (standardised
    features), so a batch is not k near-copies of one confusing example."""
    n = len(features)
    k = min(k, n)
    if strategy == "random":
        return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
    if proba is None:
        raise ConfigurationError(f"strategy {strategy!r} needs class probabilities; use 'random' for this family")
    scores = uncertainty(proba, strategy)
    order = np.argsort(-scores, kind="stable")
    if not diversity:
        return order[:k]
    candidates = order[: min(n, DIVERSITY_POOL_FACTOR * k)]
    x = np.asarray(features, dtype=float)[candidates]
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-12)
    chosen = [0]  # the most uncertain row first
    distance = np.linalg.norm(x - x[0], axis=1)
    while len(chosen) < k:
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(x - x[nxt], axis=1))
    return candidates[chosen]


@dataclass(frozen=True)
class Batch:
    """A labelling batch: its dataset version, MLflow run and what a person labels it with."""

    family: str
    batch_uri: str
    run_id: str
    rows: int
    strategy: str
    classes: list[Any]  # the champion's classes; [] for a regression family (any number)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _pool(ws: Workspace, family: str, pool: str) -> tuple[pd.DataFrame, str]:
    """The rows to choose from: a stored dataset version, a file, or (empty) the inference log's unlabelled rows."""
    from automl_tasks.monitoring.inference_log import open_inference_log

    if pool.startswith(DATASET_URI_PREFIX):
        return DatasetStore(ws.datasets, ws.dvc_remote).read(pool), pool
    if pool:
        return read_table(pool), pool
    logged = open_inference_log(ws, family).read()
    if logged.empty:
        raise UserError(f"family {family!r} has no logged requests to choose from; give a pool dataset")
    unlabelled = logged[logged["_label"].isna()]
    return unlabelled[[c for c in unlabelled.columns if not c.startswith("_")]].reset_index(drop=True), "inference log"


def select_batch(
    ws: Workspace,
    family: str,
    *,
    pool: str = "",
    batch_size: int = 40,
    strategy: str = "margin",
    diversity: bool = False,
    seed: int = 0,
    dag_run_id: str = "",
) -> Batch:
    """Choose and store a labelling batch of `family` from `pool` (see `_pool`)."""
    from automl_tasks.estimators.features import feature_frame
    from automl_tasks.families.loading import load_predictor

    if strategy not in STRATEGIES:
        raise ConfigurationError(f"The 'strategy' parameter must be one of {list(STRATEGIES)}. Got {strategy!r}.")
    predictor = load_predictor(ws, family, "champion")
    frame, source = _pool(ws, family, pool)
    missing = [c for c in predictor.schema.input_columns if c not in frame.columns]
    if missing:
        raise DataValidationError(source, [f"the pool lacks the champion's columns {missing}"])
    features = feature_frame(frame, predictor.schema)
    _, proba = predictor.predict_fn(features)
    numeric = (
        features.select_dtypes("number").to_numpy()
        if len(features.select_dtypes("number").columns)
        else np.zeros((len(frame), 1))
    )
    rows = choose_rows(
        None if proba is None else np.asarray(proba), numeric, batch_size, strategy, diversity=diversity, seed=seed
    )
    batch = frame.iloc[rows][list(predictor.schema.input_columns)].reset_index(drop=True)
    batch.insert(0, ROW_COLUMN, rows)
    if proba is not None and strategy != "random":
        batch[UNCERTAINTY_COLUMN] = uncertainty(np.asarray(proba)[rows], strategy)
    stored = DatasetStore(ws.datasets, ws.dvc_remote).put(f"{family}.labelling", batch)
    client = mlflow_client(ws)
    run = client.create_run(
        ensure_experiment(ws, family),
        run_name=f"labelling batch {dag_run_id}".strip(),
        tags={
            KIND_TAG: BATCH_KIND,
            FAMILY_TAG: family,
            DATASET_URI_TAG: stored.uri,
            MODEL_VERSION_TAG: predictor.version,
            LABELLING_STRATEGY_TAG: f"{strategy}{' + diversity' if diversity else ''} from {source}",
        },
    )
    client.log_metric(run.info.run_id, "batch_rows", len(batch))
    client.set_terminated(run.info.run_id)
    log.info(
        "labelling batch %s: %d rows (%s) of %s; label them on the Label page", stored.uri, len(batch), strategy, source
    )
    return Batch(family, stored.uri, run.info.run_id, len(batch), strategy, label_classes(predictor.labels))


def label_classes(labels: Any) -> list[Any]:
    """The classes a person labels rows with (plain Python values), [] for numbers.
    `labels`: the champion's LabelSpec, or None."""
    return [_plain(c) for c in labels.classes] if labels is not None and labels.is_classification else []


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def batches(ws: Workspace, family: str) -> list[dict[str, Any]]:
    """The family's labelling batches, newest first, with their status."""
    client = mlflow_client(ws)
    experiment = client.get_experiment_by_name(family)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{BATCH_KIND}'", order_by=["start_time DESC"]
    )
    return [
        {
            "run_id": r.info.run_id,
            "batch_uri": r.data.tags.get(DATASET_URI_TAG, ""),
            "strategy": r.data.tags.get(LABELLING_STRATEGY_TAG, ""),
            "labelled_uri": r.data.tags.get(LABELLED_URI_TAG, ""),
            "created": r.info.start_time / 1000,
        }
        for r in runs
    ]


def save_labels(ws: Workspace, family: str, run_id: str, labels: list[Any], *, user: str = "") -> str:
    """Store a batch with its labels (one per row, in order) as a `<family>.labelled` dataset
    version; refuse a wrong count or a label that is not one of the champion's classes,
    naming the row, and write nothing then. Returns the labelled dataset URI."""
    from automl_tasks.families.loading import load_predictor

    client = mlflow_client(ws)
    found = {b["run_id"]: b for b in batches(ws, family)}.get(run_id)
    if found is None:
        raise UserError(f"family {family!r} has no labelling batch {run_id!r}")
    batch = DatasetStore(ws.datasets, ws.dvc_remote).read(found["batch_uri"])
    if len(labels) != len(batch):
        raise DataValidationError(found["batch_uri"], [f"the batch has {len(batch)} rows; got {len(labels)} labels"])
    predictor = load_predictor(ws, family, "champion")
    spec = predictor.labels
    target = _target(ws, family)
    values = []
    for i, label in enumerate(labels):
        if label in (None, ""):
            raise DataValidationError(found["batch_uri"], [f"row {i} has no label"])
        if spec is not None and spec.is_classification:
            known = {str(c): c for c in label_classes(spec)}
            if str(label) not in known:
                raise DataValidationError(
                    found["batch_uri"], [f"row {i}: label {label!r} is not one of the classes {list(known)}"]
                )
            values.append(known[str(label)])
        else:
            try:
                values.append(float(label))
            except (TypeError, ValueError):
                raise DataValidationError(found["batch_uri"], [f"row {i}: label {label!r} is not a number"]) from None
    labelled = batch.drop(columns=[c for c in (ROW_COLUMN, UNCERTAINTY_COLUMN) if c in batch.columns])
    labelled[target] = values
    stored = DatasetStore(ws.datasets, ws.dvc_remote).put(f"{family}.labelled", labelled)
    client.set_tag(run_id, LABELLED_URI_TAG, stored.uri)
    if user:
        client.set_tag(run_id, LABELLED_BY_TAG, user)
    return stored.uri


def _target(ws: Workspace, family: str) -> str:
    from automl_tasks.families.loading import resolve_version

    return resolve_version(ws, family, "champion").tags.get(TARGET_TAG, "target")
