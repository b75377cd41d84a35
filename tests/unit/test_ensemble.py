"""Ensemble selection over the search's trials, registered as one model (issue #11).

The selection rule on known predictions, the ensemble's single ONNX graph (parity with the
native ensemble for each task type), and a search in-process on a real MLflow store whose
registered version is the ensemble, with the refit check, the all-rows refit and the
predictions' clean-up."""

from __future__ import annotations

import threading
from dataclasses import replace

import mlflow
import numpy as np
import onnx
import pandas as pd
import pytest
from optuna.trial import TrialState

from automl_tasks.core.errors import ExportError
from automl_tasks.core.tags import ENSEMBLE_TAG, EXPORT_FALLBACK_TAG, FIT_ROWS_TAG, REFIT_CHECK_TAG
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.deploy.runtime import NATIVE_RUNTIME, ONNX_RUNTIME, NativeModel, export_or_fallback
from automl_tasks.estimators import DataSpec, Metric, TabularEstimator
from automl_tasks.estimators.ensemble import EnsembleEstimator, ensemble_config
from automl_tasks.estimators.ensemble_selection import greedy_weights, mean_score
from automl_tasks.estimators.row_scorer import fold_score, row_scorer
from automl_tasks.estimators.weighted_ensemble import WeightedEnsemble
from automl_tasks.pipelines.advisor import registration_findings, registration_suggestions
from automl_tasks.pipelines.ensembling import choose_ensemble
from automl_tasks.search.predictions import predictions_dir
from automl_tasks.search.storage import load_study
from tests.family_builder import register_search, run_search

R2, ACCURACY = Metric("r2"), Metric("accuracy")


def _noisy(truth: np.ndarray, scale: float, seed: int) -> np.ndarray:
    return truth + np.random.default_rng(seed).normal(0, scale, truth.shape)


def test_selection_averages_independent_errors_and_never_scores_below_the_best_single():
    truths = [np.random.default_rng(f).normal(0, 1, 400) for f in range(3)]
    good_a = [_noisy(t, 0.5, 10 + f) for f, t in enumerate(truths)]
    good_b = [_noisy(t, 0.5, 20 + f) for f, t in enumerate(truths)]
    poor = [_noisy(t, 2.0, 30 + f) for f, t in enumerate(truths)]
    selection = greedy_weights(R2, truths, [poor, good_a, good_b])
    assert set(selection.members) >= {1, 2}
    assert sum(selection.weights.values()) == pytest.approx(1.0)
    assert selection.weights.get(0, 0.0) < 0.2  # the poor candidate barely counts, if at all
    singles = [mean_score(R2, truths, [c], [1.0], None) for c in (poor, good_a, good_b)]
    assert selection.best_single == pytest.approx(max(singles))
    # two independent errors of equal size: their mean halves the error variance
    assert selection.score > selection.best_single + 0.05
    chosen = [[poor, good_a, good_b][c] for c in selection.members]
    weights = [selection.weights[c] for c in selection.members]
    assert mean_score(R2, truths, chosen, weights, None) == pytest.approx(selection.score)

    same = greedy_weights(R2, truths, [good_a, good_a])
    assert same.members == [0] and same.score == pytest.approx(same.best_single)


def test_selection_scores_labels_from_averaged_probabilities():
    classes = np.array([3, 7])
    truth = np.array([3, 3, 7, 7])
    # each candidate gets one row wrong, confidently right elsewhere; their average gets all
    a = np.array([[0.9, 0.1], [0.4, 0.6], [0.1, 0.9], [0.1, 0.9]])
    b = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.6, 0.4]])
    selection = greedy_weights(ACCURACY, [truth], [[a], [b]], classes)
    assert selection.best_single == pytest.approx(0.75)
    assert selection.score == pytest.approx(1.0) and selection.members == [0, 1]


def _probabilities(rng, rows: int, n_classes: int) -> np.ndarray:
    """Rounded to two decimals, so many rows tie (the case the AUC's ranks must get right)."""
    p = np.round(rng.dirichlet(np.ones(n_classes), rows), 2)
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("metric", "classes"),
    [
        ("roc_auc", np.array([0, 1])),
        ("roc_auc", np.array(["no", "yes"])),
        ("roc_auc", np.array(["a", "b", "c"])),
        ("roc_auc", np.array(["a", "b", "c", "rare"])),  # "rare": fitted on, never among the scored rows
        ("accuracy", np.array([3, 7])),
        ("accuracy", np.array(["a", "b", "c", "d"])),
        ("log_loss", np.array([0, 1, 2])),
        ("f1_macro", np.array([0, 1, 2])),
        ("r2", None),
        ("rmse", None),
        ("mae", None),
    ],
)
def test_numpy_row_scores_equal_scikit_learns(metric, classes):
    rng = np.random.default_rng(len(metric))
    metric = Metric(metric)
    for rows in (7, 60, 301):
        if classes is None:
            truth = rng.normal(3, 2, rows)
            predictions = [truth + rng.normal(0, s, rows) for s in (0.1, 1.0, 5.0)]
        else:
            scored = classes[classes != "rare"]
            truth = scored[np.arange(rows) % len(scored)]  # every class present, but a rare one
            rng.shuffle(truth)
            predictions = [_probabilities(rng, rows, len(classes)) for _ in range(3)]
        score = row_scorer(metric, truth, classes)
        for prediction in predictions:
            assert score(prediction) == pytest.approx(fold_score(metric, truth, prediction, classes), abs=1e-12)


@pytest.mark.filterwarnings("ignore:Only one class is present")
def test_rows_numpy_cannot_score_are_left_to_scikit_learn_and_its_rules():
    one_class = np.array([1, 1, 1, 1])
    proba = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7]])
    auc = Metric("roc_auc")
    assert np.isnan(fold_score(auc, one_class, proba, np.array([0, 1])))  # scikit-learn: undefined
    assert np.isnan(row_scorer(auc, one_class, np.array([0, 1]))(proba))
    constant = np.full(5, 2.0)
    values = np.array([2.0, 2.0, 2.5, 2.0, 2.0])
    assert row_scorer(R2, constant, None)(values) == fold_score(R2, constant, values, None) == 0.0
    assert row_scorer(R2, constant, None)(constant) == 1.0


MLP = {
    "model": "mlp",
    "model.mlp.hidden_units": 16,
    "model.mlp.n_layers": 1,
    "model.mlp.learning_rate": 0.01,
    "model.mlp.weight_decay": 0.0001,
    "model.mlp.epochs": 20,
}


def _tables(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4))
    colour = rng.choice(["red", "green", "blue"], 500)
    score = x[:, 0] - x[:, 1] + (colour == "red") * 1.5 + rng.normal(0, 0.5, 500)
    frame = pd.DataFrame(x.copy(), columns=["a", "b", "c", "d"]).assign(colour=colour)
    frame.loc[rng.choice(500, 20, replace=False), "b"] = np.nan
    tables = {
        "binary": (frame.assign(y=(score > 0.5).astype(int)), "roc_auc"),
        "multiclass": (frame.assign(y=np.digitize(score, [-0.5, 1.0])), "accuracy"),
        "regression": (frame.assign(y=score * 1000.0 + 5e5), "r2"),
    }
    out = {}
    for task, (table, metric) in tables.items():
        path = tmp_path / f"{task}.parquet"
        table.to_parquet(path)
        out[task] = (DataSpec(str(path), "y", task), Metric(metric))
    return out


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_an_ensemble_is_one_onnx_graph_of_its_members_with_parity(tmp_path, task):
    data, metric = _tables(tmp_path)[task]
    members = [
        {"model": "lightgbm", "categorical_encoding": "native"},
        {"model": "random_forest", "model.random_forest.n_estimators": 30, "categorical_encoding": "onehot"},
        {"model": "linear", "model.linear.C": 1.0} if task != "regression" else MLP,
    ]
    weights = [0.5, 0.3, 0.2]
    estimator = EnsembleEstimator(
        run_epochs=None,
        data=data,
        is_trainer=True,
        model_args=ensemble_config(members, weights),
        metric=metric,
        output_dir=tmp_path / "model",
    )
    estimator.run()
    ensemble = estimator.pipeline_
    assert isinstance(ensemble, WeightedEnsemble) and len(ensemble.members) == 3
    features = estimator.features_.iloc[estimator.test_rows]
    if task == "regression":
        expected = sum(w * m.predict(features) for m, w in zip(ensemble.members, weights, strict=True))
        assert not hasattr(ensemble, "predict_proba")
        np.testing.assert_allclose(ensemble.predict(features), expected, rtol=1e-6)  # the MLP answers in float32
    else:
        expected = sum(w * m.predict_proba(features) for m, w in zip(ensemble.members, weights, strict=True))
        np.testing.assert_allclose(ensemble.predict_proba(features), expected, rtol=1e-9)
        np.testing.assert_array_equal(ensemble.predict(features), ensemble.classes_[expected.argmax(axis=1)])

    deployment = export_or_fallback(ensemble, estimator.schema_, tmp_path / "export", features)
    assert deployment.runtime == ONNX_RUNTIME, deployment.tags()
    assert deployment.parity.ok
    graph = onnx.load(str(deployment.onnx_path)).graph
    prefixes = {node.name.split("_", 1)[0] for node in graph.node if node.name[:1] == "m"}
    assert {"m0", "m1", "m2"} <= prefixes  # every member's graph is in the one model


TWO_KINDS_SPACE = """
params:
  - name: model
    type: string
    range: [linear, extra_trees]
    submodule:
      linear:
        - {name: C, type: float_log, range: [0.01, 10.0], default: 1.0}
      extra_trees:
        - {name: n_estimators, type: int_log, range: [20, 60], default: 30}
        - {name: max_depth, type: int, range: [2, 4], default: 3}
"""


def _additive_table(path) -> str:
    """A linear trend plus a step: a linear model misses the step, shallow trees the trend;
    their average misses less than either."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, size=(900, 3))
    y = 2.0 * x[:, 0] + 1.0 * x[:, 1] + 3.0 * (x[:, 2] > 0) + rng.normal(0, 0.3, 900)
    pd.DataFrame(x, columns=["trend", "slope", "step"]).assign(value=y).to_csv(path, index=False)
    return str(path)


def test_a_search_registers_the_ensemble_when_it_beats_the_best_trial(workspace, tmp_path):
    dataset = _additive_table(tmp_path / "additive.csv")
    plan, pre, run_name = run_search(
        workspace, dataset, "blend", TWO_KINDS_SPACE, target="value", n_trials=8, tag="ens"
    )
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    saved = sorted(p.name for p in predictions_dir(workspace, plan.study_name).iterdir())
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    # every completed trial kept its fold predictions (a trial the fold race stopped has none)
    assert saved == sorted(f"trial-{t.number}.npz" for t in complete), saved

    choice = choose_ensemble(workspace, study, plan, tabular=True)
    assert choice is not None and len(choice.trials) >= 2
    kinds = {t.params["model"] for t in choice.trials}
    assert kinds == {"linear", "extra_trees"}, choice.describe()
    assert choice.score > choice.best_single
    # none when the request says so, where the trials were measured one model at a time, or
    # for another estimator
    assert choose_ensemble(workspace, study, replace(plan, ensemble=False), tabular=True) is None
    assert choose_ensemble(workspace, study, replace(plan, deploy_target="cloud-cpu"), tabular=True) is None
    assert choose_ensemble(workspace, study, plan, tabular=False) is None

    registered = register_search(workspace, plan, pre, run_name)
    version = mlflow_client(workspace).get_model_version("blend", registered.version)
    assert version.tags[ENSEMBLE_TAG] == choice.describe()
    assert version.tags[REFIT_CHECK_TAG] == "passed" and version.tags[FIT_ROWS_TAG] == "all"
    assert registered.runtime == ONNX_RUNTIME
    model = mlflow.sklearn.load_model(f"models:/blend/{registered.version}")
    assert isinstance(model, WeightedEnsemble) and len(model.members) == len(choice.trials)
    assert model.weights == pytest.approx(choice.weights)
    run = mlflow_client(workspace).get_run(registered.run_id)
    assert run.data.metrics["ensemble_search_score"] == pytest.approx(choice.score)
    assert not predictions_dir(workspace, plan.study_name).exists()
    found = registration_findings(mlflow_client(workspace), "blend", plan.study_name)
    notes = [s["text"] for s in registration_suggestions(found) if s["kind"] == "ensemble"]
    assert notes and choice.describe() in notes[0]


def _study_of_saved_trials(workspace, tmp_path, truth: np.ndarray, trials: list[tuple[str, float, np.ndarray]]):
    """A study and a plan whose completed trials (model, score, prediction of one fold) have
    their fold predictions saved as workers save them; `truth` is the target."""
    from types import SimpleNamespace

    import optuna

    from automl_tasks.search.predictions import save_fold_predictions

    rows = np.arange(len(trials[0][2]))
    target = tmp_path / "target.parquet"
    pd.DataFrame({"y": truth}).to_parquet(target)
    study = optuna.create_study(direction="maximize")
    for number, (model, value, prediction) in enumerate(trials):
        params = {"model": model, "k": number}
        distributions = {
            "model": optuna.distributions.CategoricalDistribution(["lightgbm", "linear"]),
            "k": optuna.distributions.IntDistribution(0, 100),
        }
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
        save_fold_predictions(workspace, "families", number, [(rows, prediction)])
    plan = SimpleNamespace(
        study_name="families",
        parent_run_id="",
        metric="r2",
        space_yaml=TWO_KINDS_SPACE.replace("extra_trees", "lightgbm"),
        data=SimpleNamespace(path=str(target), target="y"),
    )
    return study, plan


def test_each_model_familys_best_trial_is_a_candidate_beside_the_ten_best(workspace, tmp_path):
    """Eleven LightGBM trials that share one error, then a linear one whose error is its own:
    the linear trial is twelfth, outside the ten best, and selection still gets to average
    it in (the search-rows score says by how much it helps)."""
    from automl_tasks.pipelines.ensembling import CANDIDATES, select_ensemble

    rng = np.random.default_rng(0)
    truth = rng.normal(0, 2, 600)
    shared = truth + rng.normal(0, 1, 600)
    trials = [("lightgbm", 0.9 - 0.01 * i, shared + rng.normal(0, 0.1, 600)) for i in range(11)]
    trials.append(("linear", 0.7, truth + rng.normal(0, 1.2, 600)))
    study, plan = _study_of_saved_trials(workspace, tmp_path, truth, trials)

    top_only = select_ensemble(workspace, study, plan, family_best=False)
    assert top_only.candidates == CANDIDATES
    assert {t.params["model"] for t in top_only.trials} == {"lightgbm"}
    with_families = select_ensemble(workspace, study, plan)
    assert with_families.candidates == CANDIDATES + 1
    assert "linear" in {t.params["model"] for t in with_families.trials}, with_families.describe()
    assert with_families.score > top_only.score + 0.05  # the other error averages the shared one down
    # the family's second trial is no candidate: one per family beyond the ten best
    trials.append(("linear", 0.69, truth + rng.normal(0, 1.2, 600)))
    study, plan = _study_of_saved_trials(workspace, tmp_path, truth, trials)
    assert select_ensemble(workspace, study, plan).candidates == CANDIDATES + 1


def test_a_member_refit_reuses_its_trials_tree_counts_and_grows_the_same_model(tmp_path):
    data, metric = _tables(tmp_path)["binary"]
    config = {"model": "lightgbm", "model.lightgbm.learning_rate": 0.3}
    trial = TabularEstimator(run_epochs=None, data=data, is_trainer=False, model_args=config, metric=metric)
    trial.train()
    assert len(trial.fold_best_iterations_) == 5  # 500 rows: 5-fold CV, each fold early-stopped

    def refit(known):
        estimator = TabularEstimator(run_epochs=None, data=data, is_trainer=True, model_args=config, metric=metric)
        estimator.known_fold_best_iterations = known
        estimator.train()
        return estimator

    fresh, reused = refit(None), refit(trial.fold_best_iterations_)
    assert reused.best_iteration_ == fresh.best_iteration_
    features = fresh.features_.iloc[fresh.test_rows]
    np.testing.assert_array_equal(reused.pipeline_.predict_proba(features), fresh.pipeline_.predict_proba(features))
    assert refit([3, 3, 3, 3, 3]).best_iteration_ == 3  # the known counts are what it grows


def test_an_ensemble_whose_graph_cannot_be_built_is_served_natively_with_the_reason(tmp_path, monkeypatch):
    import automl_tasks.estimators.onnx.merge as merge

    def refuse(*args, **kwargs):
        raise ExportError("planted: the merged graph is not valid ONNX")

    monkeypatch.setattr(merge, "merge_weighted", refuse)
    data, metric = _tables(tmp_path)["binary"]
    members = [{"model": "lightgbm"}, {"model": "linear", "model.linear.C": 1.0}]
    estimator = EnsembleEstimator(
        run_epochs=None,
        data=data,
        is_trainer=True,
        model_args=ensemble_config(members, [0.6, 0.4]),
        metric=metric,
        output_dir=tmp_path / "model",
    )
    estimator.run()
    features = estimator.features_.iloc[estimator.test_rows]
    deployment = export_or_fallback(estimator.pipeline_, estimator.schema_, tmp_path / "export", features)
    assert deployment.runtime == NATIVE_RUNTIME
    assert "planted" in deployment.tags()[EXPORT_FALLBACK_TAG]
    native = NativeModel(estimator.pipeline_)
    labels, proba = native.run(features)
    np.testing.assert_allclose(proba, estimator.pipeline_.predict_proba(features))


def test_members_fitted_side_by_side_are_the_models_a_serial_fit_gives(tmp_path, monkeypatch):
    """The members are fitted in threads (core/threads.map_in_threads); every member,
    two seeded MLPs among them, must be the model it is when fitted alone."""
    import automl_tasks.estimators.ensemble as ensemble_module

    data, metric = _tables(tmp_path)["binary"]
    members = [
        {"model": "mlp", "model.mlp.epochs": 5},
        {"model": "lightgbm", "categorical_encoding": "native"},
        {"model": "mlp", "model.mlp.epochs": 5, "model.mlp.hidden_units": 32},
        {"model": "random_forest", "model.random_forest.n_estimators": 20},
    ]
    config = ensemble_config(members, [0.25] * 4)

    def fitted() -> EnsembleEstimator:
        estimator = EnsembleEstimator(run_epochs=None, data=data, is_trainer=True, model_args=config, metric=metric)
        estimator.train()
        return estimator.refit_on_all_rows()

    threaded = fitted()
    monkeypatch.setattr(ensemble_module, "map_in_threads", lambda fit, items: [fit(item) for item in items])
    serial = fitted()
    features = serial.features_.iloc[serial.test_rows]
    for one, other in zip(threaded.members_, serial.members_, strict=True):
        np.testing.assert_array_equal(one.pipeline_.predict_proba(features), other.pipeline_.predict_proba(features))


def test_mlps_fitted_in_threads_at_once_are_the_models_each_gives_alone():
    """torch's global generator seeds an MLP's weights: fits in threads at once must not
    draw from it in turn (automl_tasks/estimators/torch_mlp.py holds one fit at a time)."""
    from automl_tasks.core.threads import run_in_threads
    from automl_tasks.estimators.torch_mlp import TorchMLPClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    seeds = list(range(8))
    alone = [TorchMLPClassifier(epochs=2, random_state=seed).fit(x, y).predict_proba(x) for seed in seeds]
    together: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(seeds))  # every fit starts at once: the draws would interleave

    def fit(seed: int):
        def run() -> None:
            start.wait()
            together[seed] = TorchMLPClassifier(epochs=2, random_state=seed).fit(x, y).predict_proba(x)

        return run

    for _ in range(5):  # one round interleaves the draws more often than not; five, nearly always
        run_in_threads([fit(seed) for seed in seeds], name="mlp-fit")
        for seed, expected in zip(seeds, alone, strict=True):
            np.testing.assert_array_equal(together[seed], expected)


def test_map_in_threads_keeps_the_items_order_and_raises_an_items_error():
    from automl_tasks.core.threads import map_in_threads

    assert map_in_threads(lambda n: n * n, [3, 1, 2]) == [9, 1, 4]

    def fit(n: int) -> int:
        if n == 2:
            raise ValueError("member 2 cannot be fitted")
        return n

    with pytest.raises(ValueError, match="member 2 cannot be fitted"):
        map_in_threads(fit, [1, 2, 3])
