"""Classification targets as users have them: text labels, labels other than 0..k-1, and a
class with a handful of rows. Every model of the space fits and scores on them; a class too
rare to hold out is fitted on in every fold and scored in none; a table without two
scorable classes is refused by name before anything runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.errors import DataValidationError
from automl_tasks.data import DatasetStore, validate_table
from automl_tasks.data.splits import CV_FOLDS, held_out_classes, make_splits, min_scored_class_rows
from automl_tasks.estimators import DataSpec, TabularEstimator, tabular
from automl_tasks.estimators.label_codes import label_codes
from automl_tasks.estimators.metrics import Metric

RARE_ROWS = 3  # fewer than CV_FOLDS: cannot give each fold one row to score


def _labels(n: int, seed: int = 0, rare: str | None = "tiny") -> tuple[np.ndarray, np.ndarray]:
    """(two numeric features, three text classes set by the first) and, unless `rare` is
    None, the first RARE_ROWS rows relabelled to a fourth, rare class."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = np.where(x[:, 0] > 0.5, "high", np.where(x[:, 0] < -0.5, "low", "mid")).astype(object)
    if rare is not None:
        y[:RARE_ROWS] = rare
    return x, y


# --- splits and folds ---------------------------------------------------------------------


def test_a_rare_class_is_only_ever_fitted_on():
    _, y = _labels(600)
    splits = make_splits(pd.Series(y), "multiclass", seed=0)
    rare_rows = set(np.flatnonzero(y == "tiny"))
    assert rare_rows <= set(splits.train)
    assert not rare_rows & (set(splits.valid) | set(splits.test))

    folds = tabular.search_folds(splits, y, "multiclass", seed=0, cross_validate=True)
    assert len(folds) == CV_FOLDS
    for fit, score in folds:
        assert rare_rows <= set(fit)
        assert not rare_rows & set(score)
        assert set(y[score]) == {"high", "low", "mid"}  # stratified over the others
    scored = np.concatenate([score for _, score in folds])
    assert len(scored) == len(set(scored))  # each held-out row scored once


def test_a_table_without_a_rare_class_splits_as_before():
    """The rare-class rule changes nothing for other tables: the splits are sklearn's
    stratified ones, and the folds StratifiedKFold's."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    _, y = _labels(500, rare=None)
    splits = make_splits(pd.Series(y), "multiclass", seed=3)
    rest, test = train_test_split(np.arange(500), test_size=0.2, random_state=3, stratify=y)
    train, valid = train_test_split(rest, test_size=0.25, random_state=3, stratify=y[rest])
    assert np.array_equal(splits.test, np.sort(test))
    assert np.array_equal(splits.train, np.sort(train))
    assert np.array_equal(splits.valid, np.sort(valid))

    pool = np.sort(np.concatenate([splits.train, splits.valid]))
    expected = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=3).split(pool, y[pool])
    folds = tabular.search_folds(splits, y, "multiclass", seed=3, cross_validate=True)
    for (fit, score), (want_fit, want_score) in zip(folds, expected, strict=True):
        assert np.array_equal(fit, pool[want_fit]) and np.array_equal(score, pool[want_score])


def test_when_no_two_classes_could_be_held_out_all_rows_are_split_as_before():
    """A few rows of every class (an adaptation's smoke sample, say): keeping them all out of
    the held-out splits would leave nothing to score, so they are split stratified as before."""
    y = pd.Series(np.repeat(["a", "b", "c"], CV_FOLDS - 1))
    splits = make_splits(y, "multiclass", seed=0)
    assert set(y.iloc[splits.test]) == set(y.iloc[splits.valid]) == {"a", "b", "c"}
    assert len(splits.train) + len(splits.valid) + len(splits.test) == len(y)


def test_held_out_classes_need_a_row_per_fold():
    labels = np.array(["a"] * CV_FOLDS + ["b"] * (CV_FOLDS - 1) + ["c"] * 20)
    held = held_out_classes(labels)
    assert held[labels == "a"].all() and not held[labels == "b"].any() and held[labels == "c"].all()


# --- the search scores every model on such labels ---------------------------------------------


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "log_loss"])
@pytest.mark.parametrize(
    "config",
    [
        {"model": "lightgbm"},  # trees by early stopping
        {"model": "xgboost", "model.xgboost.max_leaves": 8},  # trees by early stopping
        {"model": "catboost", "model.catboost.depth": 4},  # trees by early stopping
        {"model": "random_forest", "model.random_forest.n_estimators": 20},
        {"model": "linear"},
    ],
    ids=lambda c: c["model"],
)
def test_every_model_searches_a_table_with_text_labels_and_a_rare_class(workspace, config, metric):
    x, y = _labels(400)
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "target": y})
    stored = DatasetStore(workspace.datasets, workspace.dvc_remote).put("rare", frame)
    trial = TabularEstimator(
        run_epochs=None,
        data=DataSpec(str(stored.path), "target", "multiclass"),
        is_trainer=False,
        model_args=config,
        metric=Metric(metric),
        output_dir=None,
    )
    result = trial.run()
    assert np.isfinite(trial.fold_scores_).all() and len(trial.fold_scores_) == CV_FOLDS
    good = result.score < 0.3 if metric == "log_loss" else result.score > 0.85  # the classes are easy
    assert good, (config, metric, trial.fold_scores_)
    for model in trial.fold_models_:  # every fold's model knows every class, the rare one too
        assert list(model.classes_) == ["high", "low", "mid", "tiny"]


@pytest.mark.parametrize("labels", [("up", "down", "flat"), (3, 5, 9)], ids=["text", "not 0..k-1"])
def test_lightgbm_early_stopping_scores_the_classes_it_fitted(labels):
    """LightGBM 4.7 does not encode `eval_y` (lightgbm-org/LightGBM#7400): text labels fail
    and other labels are scored against the wrong classes. The tree count early stopping
    finds equals the one found on the same rows labelled 0..k-1."""
    import lightgbm
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 3))
    codes = np.digitize(x[:, 0] + rng.normal(scale=0.8, size=600), [-0.4, 0.4])
    y = np.asarray(labels, dtype=object if isinstance(labels[0], str) else None)[codes]
    counts = []
    for target in (codes, y):
        pipeline = make_pipeline(StandardScaler(), lightgbm.LGBMClassifier(learning_rate=0.3, verbose=-1))
        counts.append(tabular.fit_early_stopped(pipeline, x[:450], target[:450], x[450:], target[450:]))
    assert counts[0] == counts[1] < tabular.MAX_BOOSTING_ROUNDS


@pytest.mark.parametrize("model", ["lightgbm", "xgboost", "catboost"])
def test_early_stopping_rows_with_a_class_the_fit_lacks_are_refused_by_name(model):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _labels(300, rare=None)
    y_stop = y[:40].copy()
    y_stop[0] = "unknown"
    pipeline = make_pipeline(StandardScaler(), tabular.make_model({"model": model}, "multiclass"))
    with pytest.raises(ValueError, match=r"class\(es\) \['unknown'\]"):
        tabular.fit_early_stopped(pipeline, x, y, x[:40], y_stop)


def test_label_codes_are_positions_in_the_sorted_classes():
    classes = np.array(["a", "b", "c"])
    assert label_codes(classes, np.array(["c", "a", "b", "a"])).tolist() == [2, 0, 1, 0]
    with pytest.raises(ValueError, match=r"\['0'\]"):
        label_codes(classes, np.array(["0"]))  # searchsorted alone would call it 'a'


# --- the metric and the intake rule -------------------------------------------------------


def test_roc_auc_is_over_the_classes_the_scored_rows_hold():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 300)
    proba = rng.dirichlet(np.ones(4), 300)
    proba[:, 1] += (y == "b") * 0.5  # b is told apart, the others are not
    classes = np.array(["a", "b", "c", "z"])  # z: fitted on, absent from these rows
    expected = np.mean([roc_auc_score(y == c, proba[:, i]) for i, c in enumerate("abc")])
    assert Metric("roc_auc")(y, proba, classes) == pytest.approx(expected)
    three = proba[:, :3] / proba[:, :3].sum(axis=1, keepdims=True)  # every class present: sklearn's
    assert Metric("roc_auc")(y, three, classes[:3]) == pytest.approx(roc_auc_score(y, three, multi_class="ovr"))


def test_a_table_without_two_scorable_classes_is_refused_with_its_counts():
    need = min_scored_class_rows()
    assert need - int(np.ceil(need * 0.2)) >= CV_FOLDS > need - 1 - int(np.ceil((need - 1) * 0.2))
    few = pd.DataFrame({"x": np.arange(100.0), "churn": ["no"] * (101 - need) + ["yes"] * (need - 1)})
    with pytest.raises(DataValidationError) as info:
        validate_table(few, source="churn.csv", target="churn", task_type="binary")
    message = str(info.value)
    assert "churn.csv" in message and "column 'churn'" in message and "enough_rows_per_class" in message
    assert f"'yes': {need - 1}" in message and f"{need} rows or more" in message
    # rows only scored on (a retrain's held-out window) are not split: no such rule
    validate_table(few, source="window", target="churn", task_type="binary", to_split=False)

    enough = pd.DataFrame({"x": np.arange(100.0), "churn": ["no"] * (100 - need) + ["yes"] * need})
    validate_table(enough, source="churn.csv", target="churn", task_type="binary")
    _, y = _labels(200)  # two rare rows beside three scorable classes: fine
    validate_table(pd.DataFrame({"x": np.arange(200.0), "y": y}), source="t.csv", target="y", task_type="multiclass")
