"""A text family built by the adaptation pipeline's steps (no Airflow), then used the way a
tabular family is: batch inference, and drift checks that tell shifted texts from fresh
texts of the same kind (Evidently's text content drift) and score labelled feedback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.settings import Workspace
from tests.text_models import pretrained_tiny_bert, toy_reviews

FAMILY = "reviews_text_unit"


@pytest.fixture(scope="module")
def text_family(tmp_path_factory, monkeypatch_module):
    from automl_tasks.pipelines.adaptation import run_inline
    from automl_tasks.pipelines.requests import AdaptationRequest

    folder = tmp_path_factory.mktemp("text_family")
    ws = Workspace.at(folder / "ws").ensure()
    monkeypatch_module.setenv("LOOPML_HOME", str(ws.home))
    toy_reviews(240).to_csv(folder / "reviews.csv", index=False)
    request = AdaptationRequest(
        dataset=str(folder / "reviews.csv"),
        text_column="text",
        target="label",
        base_model=str(pretrained_tiny_bert(folder / "bert")),
        methods="head",
        miniaturise="quantise",
        n_trials=1,
        time_budget_s=60,
        max_epochs=4,
        family=FAMILY,
    )
    outcome = run_inline(ws, request, dag_run_id="unit")
    assert outcome["gate"]["promotion"]["promoted"], outcome["gate"]
    return ws, folder


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_batch_inference_labels_texts_in_the_users_label_type(text_family):
    from automl_tasks.families.loading import load_predictor

    ws, _ = text_family
    predictor = load_predictor(ws, FAMILY, "champion")
    frame = toy_reviews(60, seed=5)
    labels, proba = predictor.predict_fn(frame[["text"]])
    assert set(labels) <= {"positive", "negative"} and proba.shape == (60, 2)
    assert np.mean(labels == frame["label"].to_numpy()) > 0.7  # it learned the sentiment words


def _check(ws, path, **overrides):
    from automl_tasks.monitoring.drift_check import check_drift

    settings = {"min_rows": 20, "auto_retrain": False, **overrides}
    return check_drift(ws, FAMILY, dag_run_id="unit-drift", overrides=settings, data_path=str(path))


def test_fresh_texts_of_the_same_kind_do_not_drift(text_family):
    ws, folder = text_family
    toy_reviews(200, seed=11)[["text"]].to_csv(folder / "fresh.csv", index=False)
    result = _check(ws, folder / "fresh.csv")
    assert result.status == "no_drift", result.reasons
    assert result.modality == "text" and result.share_drifted == 0.0


def test_texts_about_something_else_drift_and_the_report_says_which_column(text_family):
    ws, folder = text_family
    rng = np.random.default_rng(0)
    shifted = [f"the courier lost my parcel and the refund took {n} weeks" for n in rng.integers(2, 9, 200)]
    pd.DataFrame({"text": shifted}).to_csv(folder / "shifted.csv", index=False)
    result = _check(ws, folder / "shifted.csv", prediction_drift=False)
    assert result.status == "drift" and result.drifted_columns == ["text"], result.reasons
    assert any("data drift" in reason for reason in result.reasons)


def test_labelled_feedback_that_the_champion_gets_wrong_is_concept_drift(text_family):
    ws, folder = text_family
    frame = toy_reviews(200, seed=12)
    frame["label"] = frame["label"].map({"positive": "negative", "negative": "positive"})  # the meaning flipped
    frame.to_csv(folder / "flipped.csv", index=False)
    result = _check(ws, folder / "flipped.csv", min_labelled_rows=20)
    assert result.status == "drift" and result.performance["current_score"] < 0.5, result.reasons
    assert any("concept drift" in reason for reason in result.reasons)
