"""Built-in tabular algorithms behind the estimator interface.

One configuration of the default tabular space (preprocessing choices + a model and
its conditional hyperparameters) becomes a scikit-learn Pipeline.

How a search trial is scored (issue #11, "search that spends the budget well"):
- boosted trees (LightGBM, XGBoost, CatBoost) whose configuration names no `n_estimators` grow up to
  `MAX_BOOSTING_ROUNDS` trees and stop early on the scoring rows (`EARLY_STOPPING_ROUNDS`
  without improvement); the final refit on train+validation grows the best iteration the
  trial found (found again deterministically: same rows, same seed), as AutoGluon's
  refit_full does;
- tables under `CV_MAX_ROWS` rows are scored by `CV_FOLDS`-fold cross-validation over
  train+validation (the trial's score is the mean), larger ones too when the NoCode plan's
  time budget allows (`cross_validate_within`, FLAML's rule), the others on the validation
  split;
  the test split stays out of the search either way, so the refit check compares a
  validated score with a test score as before.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from automl_tasks.core.errors import TrialPruned
from automl_tasks.data.splits import CV_FOLDS, VALID_SHARE, Splits, held_out_classes, make_splits
from automl_tasks.estimators.base import Estimator, EstimatorResult
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.estimators.label_codes import label_codes
from automl_tasks.estimators.preprocessing import make_preprocessor
from automl_tasks.features.store import read_feature_pipeline

MODELS = ("lightgbm", "xgboost", "catboost", "random_forest", "extra_trees", "linear", "mlp")
#: the Python distribution each model of MODELS predicts with natively besides scikit-learn's
#: pipeline (the serving image installs it for a version served natively, not by ONNX Runtime)
MODEL_DISTRIBUTIONS = {"lightgbm": "lightgbm", "xgboost": "xgboost-cpu", "catboost": "catboost", "mlp": "torch"}
#: boosted-trees models whose number of trees early stopping finds
BOOSTED_MODELS = ("lightgbm", "xgboost", "catboost")
#: the other names each boosted library takes for its number of trees (LightGBM's aliases of
#: `num_iterations`, CatBoost's of `iterations`): a space may use any of them, and loopml reads
#: it as `n_estimators`, a fixed count, since the library refuses or silently prefers a second
#: name beside the `n_estimators` that early stopping sets
TREE_COUNT_ALIASES: dict[str, tuple[str, ...]] = {
    "lightgbm": (
        "num_iterations",
        "num_iteration",
        "n_iter",
        "num_tree",
        "num_trees",
        "num_round",
        "num_rounds",
        "nrounds",
        "num_boost_round",
        "max_iter",
    ),
    "xgboost": (),
    "catboost": ("iterations", "num_boost_round", "num_trees"),
}

#: most boosting rounds a boosted-trees trial may grow when early stopping picks the count
MAX_BOOSTING_ROUNDS = 1000
#: rounds without improvement of the validation loss after which boosting stops
EARLY_STOPPING_ROUNDS = 50
#: tables with fewer rows than this are scored by k-fold cross-validation in the search
CV_MAX_ROWS = 3000
#: FLAML's thresholds for cross-validating larger tables when the budget allows
#: (flaml.config SMALL_LARGE_THRES and CV_HOLDOUT_THRESHOLD)
CV_CELLS_PER_HOUR = 10_000_000
CV_MAX_ROWS_BUDGETED = 100_000
#: a classification table whose validation split would hold fewer rows of its rarest class
#: than this is cross-validated whatever its size: a ranking score's noise is set by the
#: rarer class (Hanley & McNeil: ROC AUC's standard error ~0.035 at 0.75 with 56 positives,
#: more than the gaps the search ranks trials by). On caravan (6% positives, 56 in the
#: holdout) the holdout's best trial scored 0.789 there and 0.705 on unseen rows.
CV_MIN_RAREST_CLASS_ROWS = 100

#: what a fitted model was fitted on: a search trial, the checked refit, the served refit
TRAIN_ROWS, TRAIN_VALID_ROWS, ALL_ROWS = "train", "train+valid", "all"


def model_of(config: Mapping[str, Any]) -> str:
    """The configuration's model choice: LightGBM when it names none (the default space's default)."""
    return config.get("model", "lightgbm")


def tree_count_names(model: str) -> tuple[str, ...]:
    """Every name under which a configuration may fix `model`'s number of trees."""
    return ("n_estimators", *TREE_COUNT_ALIASES.get(model, ()))


def native_packages(configs: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The distributions a pipeline of `configs` (one, or an ensemble's members') predicts with
    natively: scikit-learn and each model's own library (`MODEL_DISTRIBUTIONS`), sorted."""
    models = {model_of(config) for config in configs}
    return tuple(sorted({"scikit-learn", *(MODEL_DISTRIBUTIONS[m] for m in models if m in MODEL_DISTRIBUTIONS)}))


def uses_early_stopping(config: Mapping[str, Any]) -> bool:
    """Whether the configuration's number of trees is found by early stopping: a boosted-trees
    configuration (LightGBM, XGBoost, CatBoost) that does not fix `n_estimators` (or one of
    `TREE_COUNT_ALIASES`) itself (user spaces still may)."""
    model = model_of(config)
    if model not in BOOSTED_MODELS:
        return False
    return not any(f"model.{model}.{name}" in config for name in tree_count_names(model))


def uses_cross_validation(n_rows: int, rarest_class_rows: int | None = None) -> bool:
    """Whether a table of `n_rows` rows is scored by k-fold cross-validation (else holdout):
    a small table, or a classification table whose rarest class (`rarest_class_rows` rows in
    the whole table; None for regression) would leave its validation split too few rows of
    that class to rank trials by (`CV_MIN_RAREST_CLASS_ROWS`)."""
    rare = rarest_class_rows is not None and rarest_class_rows * VALID_SHARE < CV_MIN_RAREST_CLASS_ROWS
    return n_rows < CV_MAX_ROWS or rare


def cross_validate_within(
    n_rows: int, n_columns: int, time_budget_s: float, rarest_class_rows: int | None = None
) -> bool:
    """Whether a search of `time_budget_s` on this table scores its trials by k-fold CV:
    always for a small table or a rare class (`uses_cross_validation`); above, FLAML's rule
    (`AutoML._decide_eval_method`): when the table's cells fit `CV_CELLS_PER_HOUR` scaled to
    the budget, under `CV_MAX_ROWS_BUDGETED` rows. A longer budget buys the steadier judge:
    at 120 s loopml's holdout lost to FLAML's CV on stackoverflow and credit_data
    (docs/BENCHMARKS.md)."""
    if uses_cross_validation(n_rows, rarest_class_rows):
        return True
    cells = n_rows * n_columns / 0.9
    return n_rows < CV_MAX_ROWS_BUDGETED and cells < CV_CELLS_PER_HOUR * time_budget_s / 3600


def search_folds(
    splits: Splits, target: np.ndarray, task_type: str, *, seed: int, cross_validate: bool | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, scoring rows) of each evaluation a search trial makes.

    Holdout: one pair (train, validation). Cross-validation (`cross_validate`; None: small
    tables): `CV_FOLDS` folds over train+validation, stratified for classification; the rows
    of a class too rare to hold out (`held_out_classes`) are in every fold's fit rows and no
    fold's scoring rows. The test rows are never among them."""
    pool = np.concatenate([splits.train, splits.valid])
    classify = task_type in ("binary", "multiclass")
    if cross_validate is None:
        rarest = int(np.unique(target, return_counts=True)[1].min()) if classify else None
        cross_validate = uses_cross_validation(len(pool) + len(splits.test), rarest)
    if not cross_validate:
        return [(splits.train, splits.valid)]
    from sklearn.model_selection import KFold, StratifiedKFold

    pool = np.sort(pool)
    held_out = held_out_classes(target[pool]) if classify else None
    if held_out is not None:  # else (regression, or no two classes to score) plain folds
        pool, fit_only = pool[held_out], pool[~held_out]
        folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed).split(pool, target[pool])
        return [(np.sort(np.concatenate([pool[fit], fit_only])), pool[score]) for fit, score in folds]
    folds = KFold(CV_FOLDS, shuffle=True, random_state=seed).split(pool)
    return [(pool[fit], pool[score]) for fit, score in folds]


def _branch(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The hyperparameters that exist under `model=<model>` in a flat configuration, a
    boosted model's tree count under `n_estimators` whichever name the space gave it."""
    prefix = f"model.{model}."
    params = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
    named = [name for name in tree_count_names(model) if name in params]
    if len(named) > 1:
        raise ValueError(f"model.{model} gives its number of trees twice ({', '.join(named)}): keep one of them")
    if named:
        params["n_estimators"] = params.pop(named[0])
    return params


def make_model(
    config: Mapping[str, Any],
    task_type: str,
    *,
    seed: int = 0,
    epochs: int | None = None,
    categorical: Sequence[int] = (),
):
    """The final estimator of the pipeline for the configuration's `model` choice.

    `categorical`: positions of the model's input columns that hold category codes, split
    on as categories by LightGBM (the `native` encoding); the other models see codes."""
    model = model_of(config)
    params = _branch(config, model)
    classify = task_type != "regression"
    if model == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor
        if epochs:
            params["n_estimators"] = epochs
        if categorical:  # LightGBM's dataset parameter under its alias: `categorical_feature`
            # in params draws a (wrong) "will be ignored" warning on every fit
            params["categorical_column"] = list(categorical)
        subsample = params.get("subsample", 1.0)
        return cls(**params, subsample_freq=1 if subsample < 1 else 0, random_state=seed, n_jobs=1, verbose=-1)
    if model == "xgboost":
        from automl_tasks.estimators.xgboost_models import make_xgboost

        if epochs:
            params["n_estimators"] = epochs
        return make_xgboost(params, classify=classify, seed=seed)
    if model == "catboost":
        from automl_tasks.estimators.catboost_models import make_catboost

        if epochs:
            params["n_estimators"] = epochs
        return make_catboost(params, classify=classify, seed=seed)
    if model in ("random_forest", "extra_trees"):
        from sklearn import ensemble

        name = {"random_forest": "RandomForest", "extra_trees": "ExtraTrees"}[model]
        cls = getattr(ensemble, name + ("Classifier" if classify else "Regressor"))
        params["max_depth"] = params.get("max_depth") or None
        return cls(**params, random_state=seed, n_jobs=1)
    if model == "linear":
        from sklearn.linear_model import LogisticRegression, Ridge

        c = float(params.get("C", 1.0))
        return LogisticRegression(C=c, max_iter=3000) if classify else Ridge(alpha=1.0 / c)
    if model == "mlp":
        from automl_tasks.estimators.torch_mlp import TorchMLPClassifier, TorchMLPRegressor

        if epochs:
            params["epochs"] = epochs
        cls = TorchMLPClassifier if classify else TorchMLPRegressor
        return cls(**params, random_state=seed)
    raise ValueError(f"model must be one of {MODELS}; got {model!r}")


def fit_early_stopped(pipeline: Pipeline, x_fit, y_fit, x_stop, y_stop) -> int:
    """Fit a boosted-trees pipeline (LightGBM, XGBoost, CatBoost), growing trees until the loss on
    (x_stop, y_stop) stopped improving for `EARLY_STOPPING_ROUNDS` rounds; return the best
    iteration (a tree count)."""
    import lightgbm

    preprocess, model = pipeline.steps[0][1], pipeline.steps[-1][1]
    fit_features = preprocess.fit_transform(x_fit, y_fit)
    model.set_params(n_estimators=MAX_BOOSTING_ROUNDS)
    if not isinstance(model, lightgbm.LGBMModel):
        # XGBoost: `predict` stops at the best iteration; CatBoost (`use_best_model`, its
        # default with an eval set) drops the trees after it
        model.set_params(early_stopping_rounds=EARLY_STOPPING_ROUNDS)
        model.fit(fit_features, y_fit, eval_set=[(preprocess.transform(x_stop), y_stop)], verbose=False)
        best = model.get_best_iteration() if hasattr(model, "get_best_iteration") else model.best_iteration
        return int(best) + 1
    if isinstance(model, lightgbm.LGBMClassifier):
        # LightGBM 4.7 encodes `y` but not `eval_y` (lightgbm-org/LightGBM#7400): text labels
        # fail and labels other than 0..k-1 score the early stopping against wrong classes;
        # the codes are its label encoder's (the sorted classes)
        y_stop = label_codes(np.unique(y_fit), y_stop)
    model.fit(
        fit_features,
        y_fit,
        eval_X=(preprocess.transform(x_stop),),
        eval_y=(y_stop,),
        callbacks=[lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)],
    )
    # LightGBM keeps only the trees up to the best iteration (the booster is reloaded from
    # `model_to_string()`, which stops there), so an export holds exactly what was scored
    return int(model.best_iteration_ or model.n_estimators_)


def model_columns(config: Mapping[str, Any], schema: FeatureSchema) -> tuple[list[str], list[str], list[str]]:
    """(numeric, categorical, target-encoded) model column names a configuration reads: all
    of the schema's, less the feature groups it leaves out (`FeaturePipeline.unused_columns`);
    all of them when leaving the groups out would leave no column at all."""
    names = schema.model_names
    numeric, categorical = list(schema.model_numeric), list(schema.model_categorical)
    if schema.derive is None:
        return numeric, categorical, []
    unused = {names[c] for c in schema.derive.unused_columns(dict(config)) if c in names}
    encoded = [names[c] for c in schema.derive.target_encoded(dict(config)) if c in names]
    kept_numeric = [c for c in numeric if c not in unused]
    kept_categorical = [c for c in categorical if c not in unused and c not in encoded]
    if not (kept_numeric or kept_categorical or encoded):
        return numeric, categorical, []
    return kept_numeric, kept_categorical, encoded


def make_pipeline(
    config: Mapping[str, Any], schema: FeatureSchema, task_type: str, *, seed: int = 0, epochs: int | None = None
) -> Pipeline:
    """Preprocessing + model for one configuration of the tabular space (the feature groups
    the configuration leaves out of a feature pipeline's columns are not read)."""
    encoding = config.get("categorical_encoding", "onehot")
    numeric, categorical, target_encoded = model_columns(config, schema)
    preprocess = make_preprocessor(
        numeric,
        categorical,
        imputation=config.get("imputation", "median"),
        scaling=config.get("scaling", "zscore"),
        encoding=encoding,
        target_encoded=target_encoded,
        task_type=task_type,
        seed=seed,
    )
    # the preprocessor puts the numeric columns first, then one code per categorical column
    n_numeric, n_categorical = len(numeric), len(categorical)
    categorical = range(n_numeric, n_numeric + n_categorical) if encoding == "native" else ()
    model = make_model(config, task_type, seed=seed, epochs=epochs, categorical=categorical)
    return Pipeline([("preprocess", preprocess), ("model", model)])


class TabularEstimator(Estimator):
    """A searched configuration of the tabular space, trained and scored on fixed splits."""

    #: trees that early stopping kept (None: no early stopping); a class default, so a
    #: subclass that trains its own way still reports its metrics
    best_iteration_: int | None = None
    #: which rows the model was fitted on (TRAIN_ROWS, TRAIN_VALID_ROWS or ALL_ROWS)
    fit_rows_: str = TRAIN_ROWS
    #: trainer mode: the search folds' best iterations when the trial already found them
    #: (an ensemble member); the refit then grows their mean without fitting the folds again
    known_fold_best_iterations: list[int] | None = None

    def _load(self) -> None:
        frame = pd.read_parquet(self.data.path)
        y = frame[self.data.target]
        raw = frame.drop(columns=[self.data.target])
        pipeline = read_feature_pipeline(self.data.feature_pipeline) if self.data.feature_pipeline else None
        if pipeline is not None:  # only the feature groups this model reads: computed, exported, served
            pipeline = pipeline.pruned(self.feature_configs())
        derived = pipeline.transform(raw) if pipeline is not None else raw
        schema = FeatureSchema.infer(derived)
        self.features_ = feature_frame(derived, schema)
        self.schema_ = replace(schema, derive=pipeline)
        self.target_ = y.to_numpy()
        self.splits_ = make_splits(y, self.data.task_type, seed=self.data.split_seed)

    def feature_configs(self) -> list[dict[str, Any]]:
        """The configurations whose feature groups the model reads (an ensemble: its members')."""
        return [self.model_args]

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(fit rows, scoring rows) for this mode: the first search fold, or train+valid / test."""
        s = self.splits_
        if self.is_trainer:
            return np.concatenate([s.train, s.valid]), s.test
        return self.folds_[0]

    @property
    def early_stopping(self) -> bool:
        return uses_early_stopping(self.model_args) and not self.run_epochs

    def _new_pipeline(self) -> Pipeline:
        return make_pipeline(
            self.model_args, self.schema_, self.data.task_type, seed=self.data.split_seed, epochs=self.run_epochs
        )

    def _fit_fold(self, fit_rows: np.ndarray, score_rows: np.ndarray) -> tuple[Pipeline, int | None]:
        pipeline = self._new_pipeline()
        x_fit, y_fit = self.features_.iloc[fit_rows], self.target_[fit_rows]
        if self.early_stopping:
            best = fit_early_stopped(pipeline, x_fit, y_fit, self.features_.iloc[score_rows], self.target_[score_rows])
            return pipeline, best
        return pipeline.fit(x_fit, y_fit), None

    def _metric_prediction(self, pipeline: Any, rows: np.ndarray) -> np.ndarray:
        """What the metric scores on `rows`: probabilities when it needs them, else predictions."""
        features = self.features_.iloc[rows]
        return np.asarray(pipeline.predict_proba(features) if self.metric.needs_proba else pipeline.predict(features))

    def _score_rows(self, pipeline: Any, rows: np.ndarray, prediction: np.ndarray | None = None) -> float:
        """The metric on `rows`; `prediction`: the pipeline's `_metric_prediction` there, if made already."""
        if prediction is None:
            prediction = self._metric_prediction(pipeline, rows)
        return self.metric(self.target_[rows], prediction, getattr(pipeline, "classes_", None))

    def fold_predictions(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Search mode: (scoring rows, prediction) of each search fold's model, the prediction
        being class probabilities for a classifier (whatever the metric) and values for a
        regressor: what ensemble selection averages (estimators/ensemble_selection). The
        fold's scoring prediction is reused when it is that already."""
        out = []
        for model, (_, rows), scored in zip(self.fold_models_, self.folds_, self.fold_metric_predictions_, strict=True):
            prediction = scored
            if hasattr(model, "classes_") and not self.metric.needs_proba:  # scored on labels
                prediction = np.asarray(model.predict_proba(self.features_.iloc[rows]))
            out.append((rows, prediction))
        return out

    def train(self) -> None:
        """Search mode: fit and score every search fold (`fold_scores_`); `pipeline_` is the
        first fold's model. Trainer mode: fit on train+validation, growing the mean best
        iteration of the search folds when the trees are early-stopped."""
        self._load()
        self._train_loaded()

    def _search_folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return search_folds(
            self.splits_,
            self.target_,
            self.data.task_type,
            seed=self.data.split_seed,
            cross_validate=self.data.cross_validate,
        )

    def _train_loaded(self) -> None:
        """`train` on the data `_load` (or an ensemble sharing it) has read."""
        self.folds_ = self._search_folds()
        if not self.is_trainer:
            self._score_search_folds()
            return
        fitted = []
        known = self.known_fold_best_iterations
        if self.early_stopping and not known:
            fitted = [self._fit_fold(fit, score) for fit, score in self.folds_]
        self.best_iteration_ = None
        if self.early_stopping:
            bests = known or [best for _, best in fitted]
            self.best_iteration_ = max(1, round(float(np.mean(bests))))
        fit_rows, _ = self._rows()
        self._fit_recipe(fit_rows, TRAIN_VALID_ROWS)

    def _score_search_folds(self) -> None:
        """Search mode: fit and score the folds one after another, reporting each fold's
        score (step = fold index) when there are several, so the search's fold race
        (search/fold_race) can stop a trial that is losing before its last folds."""
        self.fold_models_, self.fold_metric_predictions_, self.fold_scores_ = [], [], []
        self.fold_best_iterations_ = []
        last = len(self.folds_) - 1
        for index, (fit_rows, score_rows) in enumerate(self.folds_):
            model, best = self._fit_fold(fit_rows, score_rows)
            prediction = self._metric_prediction(model, score_rows)
            self.fold_models_.append(model)
            self.fold_metric_predictions_.append(prediction)
            self.fold_scores_.append(self._score_rows(model, score_rows, prediction))
            self.fold_best_iterations_.append(best)
            if last:
                try:
                    self.report(self.fold_scores_[-1], index, last=index == last)
                except TrialPruned as exc:  # say why in the trial's MLflow run, in the user's terms
                    raise TrialPruned(
                        f"stopped after fold {index + 1} of {last + 1} (fold race: its folds so far lose to "
                        f"those of the best trial of its model family; fold {index + 1}: {self.fold_scores_[-1]:.4g})"
                    ) from exc
        self.pipeline_ = self.fold_models_[0]
        self.best_iteration_ = self.fold_best_iterations_[0]

    def _fit_recipe(self, rows: np.ndarray, label: str) -> None:
        """Fit a new pipeline of this configuration (with `best_iteration_` trees when the
        trees were early-stopped) on `rows`, recorded as `fit_rows_` = `label`."""
        self.pipeline_ = self._new_pipeline()
        if self.best_iteration_ is not None:
            self.pipeline_.steps[-1][1].set_params(n_estimators=self.best_iteration_)
        self.pipeline_.fit(self.features_.iloc[rows], self.target_[rows])
        self.fit_rows_ = label

    def refit_on_all_rows(self) -> TabularEstimator:
        """This trained model's recipe (configuration, tree count, seed) fitted again on every
        row of the dataset, test split included, as FLAML's retrain_full and AutoGluon's
        refit_full do: the test split has done its job (the refit check) and a quarter more
        rows is worth more to the served model than a held-out score it cannot improve."""
        full = copy.copy(self)
        full._fit_recipe(np.arange(len(self.target_)), ALL_ROWS)
        return full

    def score_on_test(self) -> float:
        """The fitted model's metric on the test split (`calculate_score` also checks it is finite)."""
        return self._score_rows(self.pipeline_, self.splits_.test)

    @property
    def validated_rows(self) -> int:
        """How many rows the search score of a trial is computed on (all folds' scoring rows)."""
        return sum(len(score) for _, score in self.folds_)

    def predict_for_metric(self, features: pd.DataFrame) -> np.ndarray:
        if self.metric.needs_proba:
            return self.pipeline_.predict_proba(features)
        return self.pipeline_.predict(features)

    def calculate_score(self) -> EstimatorResult:
        """Trainer: the test score. Search trial: the mean score over the search folds."""
        if self.is_trainer:
            score = self.score_on_test()
        else:
            score = float(np.mean(self.fold_scores_))
        if not np.isfinite(score):
            raise ValueError(f"{self.metric.name} is not finite ({score}) for configuration {self.model_args}")
        metrics = {self.metric.name: score}
        if self.best_iteration_ is not None:
            metrics["best_iteration"] = float(self.best_iteration_)
        return EstimatorResult(score=score, metrics=metrics)

    def save(self, path: Path) -> str:
        import joblib

        path.mkdir(parents=True, exist_ok=True)
        target = path / "model.joblib"
        joblib.dump(self.pipeline_, target)
        return str(target)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict(feature_frame(frame, self.schema_))

    def export_onnx(self, path: Path) -> Path:
        from automl_tasks.estimators.onnx.conversion import export_pipeline

        return export_pipeline(self.pipeline_, self.schema_, path)

    def onnx_feed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        from automl_tasks.estimators.onnx.conversion import numeric_dtype, onnx_inputs

        return onnx_inputs(feature_frame(frame, self.schema_), self.schema_.graph_fed, numeric_dtype(self.pipeline_))

    def onnx_labels(self, outputs: list[np.ndarray]) -> np.ndarray:
        return np.asarray(outputs[0]).ravel()

    @property
    def test_rows(self) -> np.ndarray:
        return self.splits_.test
