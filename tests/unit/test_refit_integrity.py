"""The registered model is as good as the one the search validated (issue 19).

In-process on a real MLflow store and DVC store in a tmp workspace: a search, the final
refit with its integrity check, registration and the promotion gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.pipeline import Pipeline

import automl_tasks.pipelines.registration as task_estimator
from automl_tasks.core.tags import (
    BASELINE_SCORE_TAG,
    BASELINE_URI_TAG,
    DEFAULT_CONFIG_SCORE_TAG,
    EVAL_SCORE_TAG,
    EVAL_URI_TAG,
    FIT_ROWS_TAG,
    IS_DEFAULT_CONFIG_TAG,
    REFIT_CHECK_MODEL_TAG,
    REFIT_CHECK_REASON_TAG,
    REFIT_CHECK_TAG,
    SEARCH_SCORE_TAG,
    TRUST_ADV_ACCURACY_TAG,
    TRUST_MIA_AUC_TAG,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.deploy.onnx_model import OnnxModel
from automl_tasks.estimators import Metric, TabularEstimator
from automl_tasks.estimators.tabular import ALL_ROWS, TRAIN_VALID_ROWS
from automl_tasks.estimators.torch_mlp import TorchMLPRegressor
from automl_tasks.families.aliases import CHALLENGER, CHAMPION, current_alias_version
from automl_tasks.families.artifacts import feature_schema_of
from automl_tasks.families.promotion import GateConfig, judge
from automl_tasks.families.refit_check import (
    FAILED,
    FALLBACK,
    PASSED,
    REFIT,
    TRIAL_MODEL,
    bootstrap_scores,
    judge_refit,
)
from automl_tasks.pipelines.advisor import registration_findings, registration_suggestions
from tests.family_builder import search_and_register
from tests.price_table import price_table

R2, AUC = Metric("r2"), Metric("roc_auc")

MLP_SPACE = """
params:
  - {name: scaling, type: string, range: [zscore]}
  - name: model
    type: string
    range: [mlp]
    submodule:
      mlp:
        - {name: hidden_units, type: int_cat, range: [64]}
        - {name: n_layers, type: int_cat, range: [2]}
        - {name: learning_rate, type: float_cat, range: [0.016]}
        - {name: weight_decay, type: float_cat, range: [0.0001]}
        - {name: epochs, type: int_cat, range: [100]}
"""

LINEAR_SPACE = """
params:
  - {name: scaling, type: string, range: [zscore]}
  - name: model
    type: string
    range: [linear]
    submodule:
      linear:
        - {name: C, type: float_log, range: [0.1, 10.0], default: 1.0}
"""

# deep trees on a target of pure noise: worse than predicting the mean, consistently
OVERFIT_SPACE = """
params:
  - name: model
    type: string
    range: [extra_trees]
    submodule:
      extra_trees:
        - {name: n_estimators, type: int_cat, range: [30]}
        - {name: max_depth, type: int_cat, range: [0]}
        - {name: min_samples_leaf, type: int_cat, range: [1]}
        - {name: max_features, type: float_cat, range: [1.0]}
"""


def _search_and_register(ws, dataset: str, family: str, space: str, *, target: str = "target", n_trials: int = 1):
    return search_and_register(ws, dataset, family, space, target=target, n_trials=n_trials)


def _version_tags(ws, family: str, version: str) -> dict[str, str]:
    return dict(mlflow_client(ws).get_model_version(family, version).tags)


# ---- the pure rules -------------------------------------------------------------------


def test_check_allows_sampling_noise_and_fires_on_a_collapse():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=400)
    good = truth + rng.normal(scale=0.3, size=400)  # R² about 0.91
    boot = bootstrap_scores(R2, truth, good, samples=200)
    test = R2(truth, good)
    assert judge_refit(R2, test + 0.02, test, boot, n_test=400, n_valid=400).passed
    collapsed = np.full(400, truth.mean())
    boot = bootstrap_scores(R2, truth, collapsed, samples=200)
    check = judge_refit(R2, 0.91, R2(truth, collapsed), boot, n_test=400, n_valid=400)
    assert not check.passed and check.shortfall > 0.9 and check.test_high < 0.1
    # a minimised metric: the test RMSE may not be far above the validated one either
    rmse = Metric("rmse")
    assert not judge_refit(
        rmse, 0.3, 1.0, bootstrap_scores(rmse, truth, collapsed, samples=100), n_test=400, n_valid=400
    ).passed


@pytest.mark.parametrize("n_classes", [2, 3])
def test_bootstrap_roc_auc_equals_scikit_learns_on_every_resample(n_classes):
    """The bootstrap scores ROC AUC in numpy (row_scorer); each resample's value must be
    scikit-learn's, ties included, and a resample missing a class is skipped as before."""
    rng = np.random.default_rng(1)
    classes = np.arange(n_classes)
    truth = rng.integers(0, n_classes, 30)  # small: some resamples miss a class
    proba = np.round(rng.dirichlet(np.ones(n_classes), 30), 1)  # rounded: ties
    proba /= proba.sum(axis=1, keepdims=True)  # scikit-learn wants rows summing to 1
    boot = bootstrap_scores(AUC, truth, proba, classes, samples=60, seed=3)
    draws = np.random.default_rng(3)
    expected = []
    for _ in range(60):
        rows = draws.integers(0, 30, 30)
        try:
            expected.append(AUC(truth[rows], proba[rows], classes))
        except ValueError:
            continue
    assert len(boot) == len(expected) > 0
    np.testing.assert_allclose(boot, expected, rtol=0, atol=1e-12)


def _tags(score, **extra):
    return {EVAL_SCORE_TAG: str(score), EVAL_URI_TAG: "dataset://e@1", **{k: str(v) for k, v in extra.items()}}


def test_first_version_must_beat_the_trivial_baseline_and_the_default_configuration():
    gate = GateConfig(margin=0.01)
    base = {BASELINE_SCORE_TAG: 0.5, BASELINE_URI_TAG: "dataset://e@1"}
    worse = judge(_tags(0.45, **base), None, AUC, gate)
    assert not worse.promote and "trivial baseline" in worse.reason and worse.baseline_score == 0.5
    no_gain = judge(_tags(0.9, **base, **{SEARCH_SCORE_TAG: 0.905, DEFAULT_CONFIG_SCORE_TAG: 0.9}), None, AUC, gate)
    assert not no_gain.promote and "default configuration" in no_gain.reason
    assert judge(_tags(0.9, **base, **{SEARCH_SCORE_TAG: 0.95, DEFAULT_CONFIG_SCORE_TAG: 0.9}), None, AUC, gate).promote
    is_default = {SEARCH_SCORE_TAG: 0.9, DEFAULT_CONFIG_SCORE_TAG: 0.9, IS_DEFAULT_CONFIG_TAG: "true"}
    assert judge(_tags(0.9, **base, **is_default), None, AUC, gate).promote
    # a baseline measured on other evaluation data is not comparable, and not used
    assert judge(_tags(0.45, **{BASELINE_SCORE_TAG: 0.5, BASELINE_URI_TAG: "dataset://old@1"}), None, AUC, gate).promote


def test_a_failed_refit_is_never_promoted_automatically():
    failed = _tags(0.99, **{REFIT_CHECK_TAG: FAILED, REFIT_CHECK_REASON_TAG: "refit collapsed"})
    assert "refit collapsed" in judge(failed, None, AUC, GateConfig()).reason
    assert not judge(failed, _tags(0.5), AUC, GateConfig()).promote  # a retrain's gate too
    assert judge(_tags(0.99, **{REFIT_CHECK_TAG: FALLBACK}), _tags(0.5), AUC, GateConfig()).promote


def test_trivial_baseline_is_the_prior_or_the_mean():
    from automl_tasks.families.evaluation import trivial_baseline_score

    labels = pd.DataFrame({"t": [0, 0, 0, 1]})
    assert trivial_baseline_score(np.array([0, 0, 1]), labels, "t", AUC, "binary") == pytest.approx(0.5)
    assert trivial_baseline_score(np.array([0, 0, 1]), labels, "t", Metric("accuracy"), "binary") == 0.75
    prices = pd.DataFrame({"t": [1e6, 2e6, 3e6]})
    assert trivial_baseline_score(np.array([2e6, 2e6]), prices, "t", R2, "regression") == pytest.approx(0.0)
    assert trivial_baseline_score(np.array([1e6]), prices, "t", Metric("mae"), "regression") == pytest.approx(1e6)


def test_mlp_early_stopping_keeps_the_best_epoch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] * 3e5 + 7e5 + rng.normal(scale=2e5, size=400)).astype(np.float64)
    model = TorchMLPRegressor(learning_rate=0.03, epochs=200, patience=5).fit(x, y)
    assert model.best_epoch_ < model.n_epochs_run_ < 200, "stopped early, kept an earlier epoch"
    assert TorchMLPRegressor(epochs=3, validation_fraction=0.0).fit(x, y).n_epochs_run_ == 3


# ---- end to end in-process ------------------------------------------------------------


def test_mlp_refit_on_a_target_near_1e6_passes_the_check_and_exports(workspace, tmp_path):
    path = tmp_path / "houses.csv"
    price_table(900, seed=3).to_csv(path, index=False)
    registered, study = _search_and_register(workspace, str(path), "houses", MLP_SPACE, target="price")
    tags = _version_tags(workspace, "houses", registered.version)
    assert tags[REFIT_CHECK_TAG] == PASSED and tags[REFIT_CHECK_MODEL_TAG] == REFIT, tags[REFIT_CHECK_REASON_TAG]
    run = mlflow_client(workspace).get_run(registered.run_id).data.metrics
    assert run["refit_check_test"] == pytest.approx(registered.test_score)
    assert run["refit_check_shortfall"] <= run["refit_check_allowed"]
    assert registered.test_score > 0.7
    # the ONNX file's output matches the native model on rows priced near 1e6
    import mlflow

    native = mlflow.sklearn.load_model(registered.model_uri)
    local = mlflow.artifacts.download_artifacts(run_id=registered.run_id, artifact_path="onnx/model.onnx")
    schema = feature_schema_of(registered.run_id)
    frame = pd.read_csv(path).head(200)
    from automl_tasks.estimators.features import feature_frame

    features = feature_frame(frame, schema)
    labels, _ = OnnxModel(local, schema).run(features)
    expected = native.predict(features)
    assert np.median(expected) > 3e5
    np.testing.assert_allclose(np.asarray(labels).ravel(), expected, rtol=1e-4)
    assert registered.alias == CHAMPION and not registered.warning
    found = registration_findings(mlflow_client(workspace), "houses", study)
    assert found["refit_check"] == PASSED and found["promotion"] == "promoted"


class CollapsingTabular(TabularEstimator):
    """Searches like the built-in tabular estimator, but its final refit (train+validation)
    ignores the configuration and its seed and returns a constant model."""

    def train(self) -> None:
        if not self.is_trainer:
            return super().train()
        self._load()
        fit_rows, _ = self._rows()
        constant = (
            DummyRegressor(strategy="mean")
            if self.data.task_type == "regression"
            else DummyClassifier(strategy="prior")
        )
        self.pipeline_ = Pipeline([("model", constant)])
        self.pipeline_.fit(self.features_.iloc[fit_rows], self.target_[fit_rows])


def test_a_collapsed_refit_falls_back_to_the_trial_model(workspace, monkeypatch):
    monkeypatch.setattr(task_estimator, "TabularEstimator", CollapsingTabular)
    registered, study = _search_and_register(workspace, "breast_cancer", "collapse", LINEAR_SPACE)
    tags = _version_tags(workspace, "collapse", registered.version)
    assert tags[REFIT_CHECK_TAG] == FALLBACK and tags[REFIT_CHECK_MODEL_TAG] == TRIAL_MODEL
    assert "OUTSIDE" in tags[REFIT_CHECK_REASON_TAG] and "trial's own validated model" in tags[REFIT_CHECK_REASON_TAG]
    run = mlflow_client(workspace).get_run(registered.run_id).data.metrics
    assert run["refit_check_test"] == pytest.approx(0.5)  # the constant model's ROC AUC
    assert run["refit_check_shortfall"] > run["refit_check_allowed"]
    assert run["fallback_check_shortfall"] <= run["fallback_check_allowed"]
    assert registered.test_score == pytest.approx(run["fallback_check_test"]) and registered.test_score > 0.95
    # the registered model is the fallback, not the constant
    import mlflow

    native = mlflow.sklearn.load_model(registered.model_uri)
    assert "preprocess" in native.named_steps
    found = registration_findings(mlflow_client(workspace), "collapse", study)
    assert found["refit_check"] == FALLBACK
    assert [s["kind"] for s in registration_suggestions(found)] == ["refit_check"]


def test_the_trust_report_runs_beside_the_all_rows_refit_on_the_checked_model(workspace, monkeypatch):
    """The task estimator measures trust on the checked model in a thread while the refit on
    all rows (and its export and placement) runs: the refit waits for the report to have
    started, which a report that follows the refit never does. The report is the checked
    model's, made in its own thread, and its numbers reach the version; the version's
    `train_seconds` ends at the placement, not with the report (held here until then)."""
    import threading
    import time

    from automl_tasks.pipelines import registration

    started, placed, measured, times = threading.Event(), threading.Event(), [], {}
    real = {name: getattr(registration, name) for name in ("trust_step", "on_all_rows", "place_on_target")}

    def choose_ensemble(*args, **kwargs):  # called right after the training clock starts
        times["start"] = time.perf_counter()
        return None

    def trust_step(plan, fit, deployment=None):
        measured.append((fit.scored, threading.current_thread().name))
        started.set()
        assert placed.wait(timeout=60), "the version was not placed"
        report = real["trust_step"](plan, fit, deployment)
        times["trust_end"] = time.perf_counter()
        return report

    def on_all_rows(final):
        assert started.wait(timeout=30), "the trust report had not started when the refit on all rows began"
        return real["on_all_rows"](final)

    def place_on_target(*args):
        deployment = real["place_on_target"](*args)
        placed.set()
        return deployment

    monkeypatch.setattr(registration, "choose_ensemble", choose_ensemble)
    monkeypatch.setattr(registration, "trust_step", trust_step)
    monkeypatch.setattr(registration, "on_all_rows", on_all_rows)
    monkeypatch.setattr(registration, "place_on_target", place_on_target)
    registered, _ = _search_and_register(workspace, "breast_cancer", "beside", LINEAR_SPACE)
    tags = _version_tags(workspace, "beside", registered.version)
    assert tags[REFIT_CHECK_TAG] == PASSED and tags[FIT_ROWS_TAG] == ALL_ROWS
    [(scored, thread)] = measured
    assert scored.fit_rows_ == TRAIN_VALID_ROWS and thread.startswith("trust-report")
    assert float(tags[TRUST_MIA_AUC_TAG]) > 0 and float(tags[TRUST_ADV_ACCURACY_TAG]) >= 0
    train_seconds = mlflow_client(workspace).get_run(registered.run_id).data.metrics["train_seconds"]
    assert train_seconds < times["trust_end"] - times["start"]


def _rows_fitted(model_uri: str) -> int:
    """How many rows the registered pipeline's numeric scaler saw when it was fitted."""
    import mlflow

    native = mlflow.sklearn.load_model(model_uri)
    scaler = native.named_steps["preprocess"].named_transformers_["numeric"].named_steps["scale"]
    return int(np.max(scaler.n_samples_seen_))


def test_a_passed_refit_registers_its_recipe_refitted_on_all_rows_scored_as_checked(workspace):
    registered, _ = _search_and_register(workspace, "breast_cancer", "allrows", LINEAR_SPACE)
    tags = _version_tags(workspace, "allrows", registered.version)
    assert tags[REFIT_CHECK_TAG] == PASSED and tags[FIT_ROWS_TAG] == ALL_ROWS
    assert _rows_fitted(registered.model_uri) == 569, "every row of breast_cancer, test split included"
    run = mlflow_client(workspace).get_run(registered.run_id).data.metrics
    # the scores on held-out rows are the checked model's: the family's evaluation data is
    # this first version's test split, which the all-rows model has seen
    assert registered.test_score == pytest.approx(run["refit_check_test"])
    assert float(tags[EVAL_SCORE_TAG]) == pytest.approx(run["refit_check_test"], abs=1e-6)


class BrokenAllRowsTabular(TabularEstimator):
    """Searches and refits like the built-in estimator, but its all-rows refit is a constant."""

    def refit_on_all_rows(self) -> TabularEstimator:
        full = super().refit_on_all_rows()
        full.pipeline_ = Pipeline([("model", DummyClassifier(strategy="prior"))]).fit(full.features_, full.target_)
        return full


class NanProbabilities(DummyClassifier):
    """A fitted classifier whose probabilities are NaN (a diverged fit)."""

    def predict_proba(self, features):
        return np.full((len(features), len(self.classes_)), np.nan)


class NanAllRowsTabular(TabularEstimator):
    """Its all-rows refit answers NaN probabilities: no score can be compared with it."""

    def refit_on_all_rows(self) -> TabularEstimator:
        full = super().refit_on_all_rows()
        full.pipeline_ = Pipeline([("model", NanProbabilities())]).fit(full.features_, full.target_)
        return full


@pytest.mark.parametrize("broken", [BrokenAllRowsTabular, NanAllRowsTabular], ids=["constant", "nan"])
def test_an_all_rows_refit_worse_on_rows_it_has_seen_is_not_registered(workspace, monkeypatch, broken):
    monkeypatch.setattr(task_estimator, "TabularEstimator", broken)
    registered, _ = _search_and_register(workspace, "breast_cancer", "broken-all", LINEAR_SPACE)
    tags = _version_tags(workspace, "broken-all", registered.version)
    assert tags[REFIT_CHECK_TAG] == PASSED and tags[FIT_ROWS_TAG] == TRAIN_VALID_ROWS
    assert "registered the checked model" in tags[REFIT_CHECK_REASON_TAG]
    assert _rows_fitted(registered.model_uri) == 569 - 114, "train+valid: the test split held out"


def test_a_first_version_worse_than_the_trivial_baseline_is_not_champion(workspace, tmp_path):
    rng = np.random.default_rng(0)
    noise = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "d"]).assign(y=rng.normal(size=300) * 1e5)
    path = tmp_path / "noise.csv"
    noise.to_csv(path, index=False)
    registered, study = _search_and_register(workspace, str(path), "noise", OVERFIT_SPACE, target="y")
    tags = _version_tags(workspace, "noise", registered.version)
    assert tags[REFIT_CHECK_TAG] == PASSED, "consistently bad, so the refit check itself has nothing to say"
    assert float(tags[EVAL_SCORE_TAG]) < float(tags[BASELINE_SCORE_TAG])
    client = mlflow_client(workspace)
    assert current_alias_version(client, "noise", CHAMPION) is None
    assert current_alias_version(client, "noise", CHALLENGER) == registered.version
    assert registered.alias == CHALLENGER
    assert "NO champion" in registered.warning and "trivial baseline" in registered.warning
    assert "trivial baseline" in tags["loopml.promotion.reason"]
    found = registration_findings(client, "noise", study)
    assert "not_promoted" in [s["kind"] for s in registration_suggestions(found)]
