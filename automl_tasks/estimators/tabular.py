"""Built-in tabular algorithms behind the estimator interface.

One configuration of the default tabular space (preprocessing choices + a model and
its conditional hyperparameters) becomes a scikit-learn Pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from automl_tasks.data.splits import make_splits
from automl_tasks.estimators.base import Estimator, EstimatorResult
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.estimators.preprocessing import make_preprocessor

MODELS = ("lightgbm", "random_forest", "extra_trees", "linear", "mlp")


def _branch(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The hyperparameters that exist under `model=<model>` in a flat configuration."""
    prefix = f"model.{model}."
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def make_model(config: Mapping[str, Any], task_type: str, *, seed: int = 0, epochs: int | None = None):
    """The final estimator of the pipeline for the configuration's `model` choice."""
    model = config.get("model", "lightgbm")
    params = _branch(config, model)
    classify = task_type != "regression"
    if model == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor
        if epochs:
            params["n_estimators"] = epochs
        subsample = params.get("subsample", 1.0)
        return cls(**params, subsample_freq=1 if subsample < 1 else 0, random_state=seed, n_jobs=1, verbose=-1)
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


def make_pipeline(
    config: Mapping[str, Any], schema: FeatureSchema, task_type: str, *, seed: int = 0, epochs: int | None = None
) -> Pipeline:
    """Preprocessing + model for one configuration of the tabular space."""
    preprocess = make_preprocessor(
        schema.model_numeric,
        schema.model_categorical,
        imputation=config.get("imputation", "median"),
        scaling=config.get("scaling", "zscore"),
        encoding=config.get("categorical_encoding", "onehot"),
    )
    return Pipeline([("preprocess", preprocess), ("model", make_model(config, task_type, seed=seed, epochs=epochs))])


class TabularEstimator(Estimator):
    """A searched configuration of the tabular space, trained and scored on fixed splits."""

    def _load(self) -> None:
        frame = pd.read_parquet(self.data.path)
        y = frame[self.data.target]
        self.schema_ = FeatureSchema.infer(frame.drop(columns=[self.data.target]))
        self.features_ = feature_frame(frame, self.schema_)
        self.target_ = y.to_numpy()
        self.splits_ = make_splits(y, self.data.task_type, seed=self.data.split_seed)

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(fit rows, scoring rows) for this mode."""
        s = self.splits_
        if self.is_trainer:
            return np.concatenate([s.train, s.valid]), s.test
        return s.train, s.valid

    def train(self) -> None:
        self._load()
        fit_rows, _ = self._rows()
        self.pipeline_ = make_pipeline(
            self.model_args, self.schema_, self.data.task_type, seed=self.data.split_seed, epochs=self.run_epochs
        )
        self.pipeline_.fit(self.features_.iloc[fit_rows], self.target_[fit_rows])

    def predict_for_metric(self, features: pd.DataFrame) -> np.ndarray:
        if self.metric.needs_proba:
            return self.pipeline_.predict_proba(features)
        return self.pipeline_.predict(features)

    def calculate_score(self) -> EstimatorResult:
        _, score_rows = self._rows()
        features, truth = self.features_.iloc[score_rows], self.target_[score_rows]
        classes = getattr(self.pipeline_, "classes_", None)
        score = self.metric(truth, self.predict_for_metric(features), classes)
        if not np.isfinite(score):
            raise ValueError(f"{self.metric.name} is not finite ({score}) for configuration {self.model_args}")
        return EstimatorResult(score=score, metrics={self.metric.name: score})

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

        return onnx_inputs(feature_frame(frame, self.schema_), self.schema_, numeric_dtype(self.pipeline_))

    def onnx_labels(self, outputs: list[np.ndarray]) -> np.ndarray:
        return np.asarray(outputs[0]).ravel()

    @property
    def test_rows(self) -> np.ndarray:
        return self.splits_.test
