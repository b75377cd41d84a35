"""Active learning: which rows are picked, and a batch chosen, labelled and stored for retraining
(a real family registered in-process, the real dataset store and MLflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.errors import ConfigurationError, DataValidationError
from automl_tasks.data import DatasetStore
from automl_tasks.data.bundled import bundled_frame
from automl_tasks.monitoring.active_learning import (
    ROW_COLUMN,
    UNCERTAINTY_COLUMN,
    batches,
    choose_rows,
    save_labels,
    select_batch,
    uncertainty,
)
from tests.family_builder import LIGHTGBM_SPACE, add_version


def test_uncertainty_is_highest_where_the_classes_are_closest():
    proba = np.array([[0.98, 0.01, 0.01], [0.34, 0.33, 0.33], [0.5, 0.495, 0.005]])
    assert np.argmax(uncertainty(proba, "entropy")) == 1
    assert np.argmax(uncertainty(proba, "margin")) == 2, "margin: the two top classes nearly tie"
    with pytest.raises(ConfigurationError):
        uncertainty(proba, "variance")


def test_uncertain_rows_are_chosen_and_diversity_spreads_them():
    rng = np.random.default_rng(0)
    # two far-apart clusters; cluster A's 6 rows are a little more uncertain than cluster B's 20
    features = np.vstack([rng.normal(0, 0.1, (6, 2)), rng.normal(10, 0.1, (20, 2))])
    proba = np.vstack([np.tile([0.5, 0.5], (6, 1)), np.tile([0.55, 0.45], (20, 1))])
    plain = choose_rows(proba, features, 4, "entropy")
    assert set(plain) <= set(range(6)), "without diversity: the most uncertain cluster only"
    spread = choose_rows(proba, features, 4, "entropy", diversity=True)
    assert {i < 6 for i in spread} == {True, False}, "with diversity: both clusters"
    first = choose_rows(None, features, 5, "random", seed=3)
    assert len(set(first)) == 5 and list(first) == list(choose_rows(None, features, 5, "random", seed=3))
    with pytest.raises(ConfigurationError, match="needs class probabilities"):
        choose_rows(None, features, 5, "margin")


def test_a_batch_is_chosen_labelled_and_stored_for_retraining(workspace, tmp_path):
    from automl_tasks.pipelines.requests import RetrainRequest
    from automl_tasks.pipelines.retrain import prepare_retrain_data

    add_version(workspace, "al", n_trials=1, space=LIGHTGBM_SPACE)
    table = bundled_frame("breast_cancer").sample(200, random_state=0).reset_index(drop=True)
    pool_path = tmp_path / "pool.csv"
    table.drop(columns=["target"]).to_csv(pool_path, index=False)
    batch = select_batch(workspace, "al", pool=str(pool_path), batch_size=30, strategy="margin", diversity=True)
    assert batch.rows == 30 and sorted(map(str, batch.classes)) == ["0", "1"]
    stored = DatasetStore(workspace.datasets, workspace.dvc_remote).read(batch.batch_uri)
    assert stored[UNCERTAINTY_COLUMN].min() >= 0 and stored[ROW_COLUMN].nunique() == 30
    assert [b["run_id"] for b in batches(workspace, "al")] == [batch.run_id]

    truth = [str(v) for v in table["target"].iloc[stored[ROW_COLUMN]]]
    with pytest.raises(DataValidationError, match="row 3: label 'maybe' is not one of the classes"):
        save_labels(workspace, "al", batch.run_id, truth[:3] + ["maybe"] + truth[4:])
    with pytest.raises(DataValidationError, match="has 30 rows; got 2 labels"):
        save_labels(workspace, "al", batch.run_id, truth[:2])
    assert batches(workspace, "al")[0]["labelled_uri"] == "", "a refused labelling stores nothing"

    labelled_uri = save_labels(workspace, "al", batch.run_id, truth, user="ann")
    labelled = DatasetStore(workspace.datasets, workspace.dvc_remote).read(labelled_uri)
    assert [str(v) for v in labelled["target"]] == truth
    assert ROW_COLUMN not in labelled and UNCERTAINTY_COLUMN not in labelled
    expected = table.iloc[stored[ROW_COLUMN]].reset_index(drop=True)[list(labelled.columns)]
    pd.testing.assert_frame_equal(labelled, expected, check_dtype=False)
    assert batches(workspace, "al")[0]["labelled_uri"] == labelled_uri
    # the labelled version is a window drift_retrain takes as it is
    intake = prepare_retrain_data(workspace, RetrainRequest(family="al", window_uri=labelled_uri), dag_run_id="t")
    assert intake.rows > len(labelled), "combined with the champion's data"
