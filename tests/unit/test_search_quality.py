"""The rules that make a search spend its budget well (issue #11): early-stopped boosting,
cross-validation for small tables, slow models left out of small budgets, and a time
budget that counts from the first worker's start."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from automl_tasks.data import DatasetStore
from automl_tasks.data.splits import VALID_SHARE, make_splits
from automl_tasks.estimators import DataSpec, TabularEstimator, tabular
from automl_tasks.estimators.metrics import Metric
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, budget, default_tabular_space, load_search_space


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    y = ((x1 + 0.5 * x2 + (colour == "red") + rng.normal(scale=0.8, size=n)) > 0.5).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "target": y})


def _spec(workspace, frame: pd.DataFrame, name: str = "t") -> DataSpec:
    stored = DatasetStore(workspace.datasets, workspace.dvc_remote).put(name, frame)
    return DataSpec(str(stored.path), "target", "binary")


def _estimator(spec: DataSpec, config: dict, *, trainer: bool, tmp_path=None) -> TabularEstimator:
    return TabularEstimator(
        run_epochs=None,
        data=spec,
        is_trainer=trainer,
        model_args=config,
        metric=Metric("roc_auc"),
        output_dir=tmp_path,
    )


# --- early stopping -----------------------------------------------------------------------


def test_early_stopping_applies_to_lightgbm_without_a_fixed_tree_count():
    assert tabular.uses_early_stopping({"model": "lightgbm", "model.lightgbm.learning_rate": 0.1})
    assert tabular.uses_early_stopping({})  # lightgbm is the default model
    assert not tabular.uses_early_stopping({"model": "lightgbm", "model.lightgbm.n_estimators": 50})
    assert not tabular.uses_early_stopping({"model": "random_forest"})
    assert tabular.uses_early_stopping({"model": "xgboost", "model.xgboost.max_leaves": 16})
    assert not tabular.uses_early_stopping({"model": "xgboost", "model.xgboost.n_estimators": 50})
    assert tabular.uses_early_stopping({"model": "catboost", "model.catboost.depth": 4})
    assert not tabular.uses_early_stopping({"model": "catboost", "model.catboost.n_estimators": 50})


def test_default_space_does_not_sample_boosting_rounds():
    names = default_tabular_space().names()
    assert "model.lightgbm.learning_rate" in names
    assert "model.lightgbm.n_estimators" not in names
    assert tabular.uses_early_stopping(default_tabular_space().default_config())


def _scored_trees(model) -> int:
    """The trees a fitted boosted-trees model predicts with (LightGBM and CatBoost keep only
    those; XGBoost keeps the ones after the best iteration too, and its predict skips them)."""
    if hasattr(model, "booster_"):
        return model.booster_.current_iteration()
    if hasattr(model, "tree_count_"):
        return model.tree_count_
    return model.best_iteration + 1 if model.early_stopping_rounds else model.get_booster().num_boosted_rounds()


@pytest.mark.parametrize(
    "config",
    [
        {"model": "lightgbm", "model.lightgbm.learning_rate": 0.3, "model.lightgbm.num_leaves": 32},
        # XGBoost: a model a user's space can name, with the same early stopping and refit
        {"model": "xgboost", "model.xgboost.learning_rate": 0.3, "model.xgboost.max_leaves": 32},
        {"model": "catboost", "model.catboost.learning_rate": 0.3, "model.catboost.depth": 6},
    ],
    ids=["lightgbm", "xgboost", "catboost"],
)
def test_trial_stops_boosting_early_and_the_refit_grows_the_folds_mean_best_iteration(config, workspace, tmp_path):
    spec = _spec(workspace, _table(600))
    # a high learning rate overfits fast: the validation loss stops improving long before the cap
    trial = _estimator(spec, config, trainer=False)
    trial.run()
    bests = trial.fold_best_iterations_
    assert all(1 <= b < tabular.MAX_BOOSTING_ROUNDS - tabular.EARLY_STOPPING_ROUNDS for b in bests)
    assert _scored_trees(trial.pipeline_.steps[-1][1]) == bests[0]  # only the trees it scored
    final = _estimator(spec, config, trainer=True, tmp_path=tmp_path)
    result = final.run()
    assert final.best_iteration_ == max(1, round(float(np.mean(bests))))
    assert _scored_trees(final.pipeline_.steps[-1][1]) == final.best_iteration_
    assert result.metrics["best_iteration"] == final.best_iteration_


@pytest.mark.parametrize(
    "model, name",
    [
        ("lightgbm", "n_estimators"),
        # the libraries' own names for it: CatBoost refused `iterations` beside the
        # `n_estimators` early stopping sets, LightGBM silently preferred `num_iterations`
        ("lightgbm", "num_iterations"),
        ("catboost", "iterations"),
        ("catboost", "num_trees"),
    ],
)
def test_a_fixed_tree_count_is_grown_as_given_under_any_of_its_names(model, name, workspace):
    spec = _spec(workspace, _table(400))
    config = {"model": model, f"model.{model}.{name}": 7}
    assert not tabular.uses_early_stopping(config)
    trial = _estimator(spec, config, trainer=False)
    trial.run()
    assert _scored_trees(trial.pipeline_.steps[-1][1]) == 7
    assert trial.best_iteration_ is None


def test_a_tree_count_given_twice_is_refused_naming_both():
    config = {"model": "catboost", "model.catboost.iterations": 7, "model.catboost.n_estimators": 9}
    with pytest.raises(
        ValueError, match="model.catboost gives its number of trees twice \\(n_estimators, iterations\\)"
    ):
        tabular.make_model(config, "binary")


# --- cross-validation for small tables ----------------------------------------------------


def test_small_tables_are_cross_validated_over_train_and_validation_never_test():
    n = tabular.CV_MAX_ROWS - 1
    y = pd.Series(np.arange(n) % 3 == 0).astype(int)
    splits = make_splits(y, "binary", seed=0)
    folds = tabular.search_folds(splits, y.to_numpy(), "binary", seed=0)
    assert len(folds) == tabular.CV_FOLDS
    scored = np.concatenate([score for _, score in folds])
    pool = np.concatenate([splits.train, splits.valid])
    assert sorted(scored) == sorted(pool)  # every pool row scored exactly once
    for fit, score in folds:
        assert not set(fit) & set(score)
        assert not (set(fit) | set(score)) & set(splits.test)


def test_large_tables_use_the_validation_split():
    n = tabular.CV_MAX_ROWS
    y = pd.Series(np.arange(n) % 2)
    splits = make_splits(y, "binary", seed=0)
    folds = tabular.search_folds(splits, y.to_numpy(), "binary", seed=0)
    assert len(folds) == 1
    np.testing.assert_array_equal(folds[0][0], splits.train)
    np.testing.assert_array_equal(folds[0][1], splits.valid)


def test_larger_tables_are_cross_validated_when_the_budget_allows_as_flaml_decides():
    assert tabular.cross_validate_within(tabular.CV_MAX_ROWS - 1, 500, 1)  # small: always
    # 4,475 rows x 20 columns (stackoverflow's 80%): holdout at 30 s, CV at 120 s
    assert not tabular.cross_validate_within(4475, 20, 30)
    assert tabular.cross_validate_within(4475, 20, 120)
    assert not tabular.cross_validate_within(tabular.CV_MAX_ROWS_BUDGETED, 2, 36_000)  # too many rows

    n = tabular.CV_MAX_ROWS  # over the row rule: the plan's decision is what counts
    y = pd.Series(np.arange(n) % 2)
    splits = make_splits(y, "binary", seed=0)
    assert len(tabular.search_folds(splits, y.to_numpy(), "binary", seed=0, cross_validate=True)) == tabular.CV_FOLDS
    assert len(tabular.search_folds(splits, y.to_numpy(), "binary", seed=0, cross_validate=False)) == 1


def test_a_rare_class_is_cross_validated_whatever_the_table_size():
    # caravan's 80%: 4,657 rows x 85 columns, 278 positives: 56 in a holdout, too few to rank by
    assert not tabular.cross_validate_within(4657, 85, 30)
    assert tabular.cross_validate_within(4657, 85, 30, rarest_class_rows=278)
    enough = int(tabular.CV_MIN_RAREST_CLASS_ROWS / VALID_SHARE)
    assert not tabular.cross_validate_within(4657, 85, 30, rarest_class_rows=enough)
    assert tabular.cross_validate_within(4657, 85, 30, rarest_class_rows=enough - 1)

    n = tabular.CV_MAX_ROWS + 1000  # over the row rule, decided by the labels alone
    rare = pd.Series((np.arange(n) % 40 == 0).astype(int))  # 2.5% positives: 20 in the holdout
    common = pd.Series(np.arange(n) % 2)
    for y, folds in ((rare, tabular.CV_FOLDS), (common, 1)):
        splits = make_splits(y, "binary", seed=0)
        assert len(tabular.search_folds(splits, y.to_numpy(), "binary", seed=0)) == folds
    splits = make_splits(rare.astype(float), "regression", seed=0)  # no class to be rare
    assert len(tabular.search_folds(splits, rare.to_numpy(float), "regression", seed=0)) == 1


def test_a_plans_cross_validation_reaches_the_trials(workspace):
    frame = _table(tabular.CV_MAX_ROWS + 100)
    spec = _spec(workspace, frame)
    holdout = _estimator(spec, {"model": "linear"}, trainer=False)
    holdout.run()
    assert len(holdout.fold_scores_) == 1
    cross = _estimator(DataSpec(**{**spec.to_dict(), "cross_validate": True}), {"model": "linear"}, trainer=False)
    cross.run()
    assert len(cross.fold_scores_) == tabular.CV_FOLDS
    assert cross.validated_rows == len(cross.splits_.train) + len(cross.splits_.valid)


def test_a_small_tables_trial_score_is_the_mean_over_folds(workspace):
    spec = _spec(workspace, _table(500))
    trial = _estimator(spec, {"model": "linear"}, trainer=False)
    result = trial.run()
    assert len(trial.fold_scores_) == tabular.CV_FOLDS
    assert result.score == pytest.approx(float(np.mean(trial.fold_scores_)))
    assert trial.validated_rows == len(trial.splits_.train) + len(trial.splits_.valid)


def test_refit_check_weighs_a_cross_validated_score_by_its_rows(workspace, tmp_path):
    """The refit check's noise allowance shrinks with the rows behind the validated score:
    a 5-fold mean over train+valid is judged with those rows, not the validation split's."""
    from automl_tasks.families import refit_check

    spec = _spec(workspace, _table(500))
    final = _estimator(spec, {"model": "linear"}, trainer=True, tmp_path=tmp_path)
    final.run()
    check = refit_check.check_model(final, 0.8)
    boot = refit_check.bootstrap_scores(
        final.metric,
        final.target_[final.splits_.test],
        final.predict_for_metric(final.features_.iloc[final.splits_.test]),
        samples=refit_check.BOOTSTRAP_SAMPLES,
    )
    expected = refit_check.judge_refit(
        final.metric, 0.8, check.test_score, boot, n_test=len(final.splits_.test), n_valid=final.validated_rows
    )
    holdout = refit_check.judge_refit(
        final.metric, 0.8, check.test_score, boot, n_test=len(final.splits_.test), n_valid=len(final.splits_.valid)
    )
    assert check.allowed == pytest.approx(expected.allowed)
    assert check.allowed < holdout.allowed


# --- slow model families and small budgets ------------------------------------------------


def _models(space_text: str) -> tuple:
    return load_search_space(space_text).find("model").range


def test_slow_models_are_left_out_when_few_of_their_trials_fit_the_budget():
    text = DEFAULT_TABULAR_SPACE.read_text()
    rows, evaluations = 1500, 5
    trial_s = budget.estimated_trial_s("mlp", rows, evaluations)
    small = budget.fit_space_to_budget(
        text, rows=rows, time_budget_s=trial_s * budget.MIN_TRIALS_OF_SLOW_MODEL - 1, evaluations=evaluations
    )
    assert small.dropped == ("mlp",)
    assert "mlp" not in _models(small.space_text)
    assert "model.mlp.epochs" not in load_search_space(small.space_text).names()
    assert "'mlp'" in small.reason and "budget" in small.reason
    enough = budget.fit_space_to_budget(
        text, rows=rows, time_budget_s=trial_s * budget.MIN_TRIALS_OF_SLOW_MODEL + 1, evaluations=evaluations
    )
    assert enough.dropped == () and enough.space_text == text and "mlp" in _models(enough.space_text)


def test_the_estimate_grows_with_rows_and_folds():
    assert budget.estimated_trial_s("mlp", 4000, 1) == pytest.approx(2 * budget.estimated_trial_s("mlp", 2000, 1))
    assert budget.estimated_trial_s("mlp", 2000, 5) == pytest.approx(5 * budget.estimated_trial_s("mlp", 2000, 1))


def test_the_default_model_is_never_left_out():
    text = """
params:
  - name: model
    type: string
    range: [mlp, linear]
    default: mlp
"""
    fit = budget.fit_space_to_budget(text, rows=100_000, time_budget_s=10, evaluations=1)
    assert fit.dropped == () and fit.space_text == text


def test_formatter_counts_folds_for_small_tables_and_logs_what_it_left_out(caplog):
    from automl_tasks.search.formatter import fit_space_to_budget

    text = DEFAULT_TABULAR_SPACE.read_text()
    with caplog.at_level("INFO", logger="automl_tasks.search.formatter"):
        fit = fit_space_to_budget(text, {"rows": 1470, "columns": 31}, 30)
    assert fit.dropped == ("mlp",)
    assert f"x {tabular.CV_FOLDS} evaluation(s)" in fit.reason
    assert fit.reason in caplog.text


# --- the time budget counts from the first worker ----------------------------------------


def test_the_deadline_counts_from_the_first_workers_start():
    import optuna

    from automl_tasks.search.clock import WORKER_START_GRACE_S, search_deadline, start_clock

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    planned = time.time() - 50  # the plan was written 50 s before any worker came up
    plan = SimpleNamespace(deadline=planned + 30, time_budget_s=30)
    assert search_deadline(study, plan) == plan.deadline + WORKER_START_GRACE_S
    first = start_clock(study, now=planned + 50)
    assert start_clock(study, now=planned + 55) == first  # a later worker keeps the first start
    assert search_deadline(study, plan) == pytest.approx(first + 30)
