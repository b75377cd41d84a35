"""The estimator interface (OmniForce Listing 1): what every trainable algorithm provides.

The search engine only talks to this interface. An implementation receives the number
of epochs to run (the fidelity), where the data is, whether it is the final trainer
(then it saves its model) and its model arguments (one configuration of the space).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl_tasks.core.errors import TrialPruned
from automl_tasks.estimators.metrics import Metric


@dataclass(frozen=True)
class DataSpec:
    """Where an estimator's data lives and how it is split; small and JSON-able."""

    path: str  # local Parquet file of a dataset version
    target: str
    task_type: str  # binary | multiclass | regression
    split_seed: int = 0
    #: whether a search trial is scored by k-fold cross-validation; None: by the table's
    #: size alone (`estimators.tabular.uses_cross_validation`); the NoCode plan decides it
    #: from size and time budget (`estimators.tabular.cross_validate_within`)
    cross_validate: bool | None = None
    #: the fitted feature pipeline's JSON file (`features.store`) that turns the table's raw
    #: columns into model columns; None: the raw columns are the model's
    feature_pipeline: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "target": self.target,
            "task_type": self.task_type,
            "split_seed": self.split_seed,
            "cross_validate": self.cross_validate,
            "feature_pipeline": self.feature_pipeline,
        }


@dataclass
class EstimatorResult:
    """Outcome of one `run()`: the score on the scoring split, extra metrics and timing."""

    score: float
    metrics: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    model_path: str | None = None


class Estimator(ABC):
    """Base class of every algorithm loopml can search, train and deploy.

    Subclasses implement `train`, `calculate_score` and `save`; `run` ties them together.
    When `is_trainer` is False the estimator is a search trial: it trains on the train
    split and scores on the validation split. When True it is the final trainer: it trains
    on train+validation, scores on the held-out test split and saves the model.

    New algorithms subclass it and check themselves with
    `automl_tasks.testing.check_estimator`; an algorithm folder (algorithm.yaml naming the
    class as `package.module:Class`) with `automl_tasks.testing.check_algorithm_spec`.
    """

    def __init__(
        self,
        *,
        run_epochs: int | None,
        data: DataSpec,
        is_trainer: bool,
        model_args: Mapping[str, Any],
        metric: Metric,
        output_dir: str | Path | None = None,
    ) -> None:
        self.run_epochs = run_epochs
        self.data = data
        self.is_trainer = is_trainer
        self.model_args = dict(model_args)
        self.metric = metric
        self.output_dir = Path(output_dir) if output_dir else None
        #: set by a search worker: called with (intermediate score, fidelity step), True = stop now
        self.reporter: Any = None

    def report(self, value: float, step: int, *, last: bool = False) -> None:
        """Pass an intermediate score (e.g. after an epoch) to the search; raise TrialPruned if told to stop.

        At the `last` step the trial has done all its work: the score is still reported (the
        pruner's rungs and the history plots use it), but a stop is not obeyed, so a trial
        that finished every epoch keeps its score instead of being pruned after the fact."""
        if self.reporter is not None and self.reporter(value, step) and not last:
            raise TrialPruned(f"stopped by the search strategy at step {step} (score {value:.4g})")

    @abstractmethod
    def train(self) -> None:
        """Fit the model on the training rows for this mode."""

    @abstractmethod
    def calculate_score(self) -> EstimatorResult:
        """Score the fitted model on the scoring rows; `score` uses `self.metric`."""

    @abstractmethod
    def save(self, path: Path) -> str:
        """Persist the fitted model under `path`; return the saved file's path."""

    # --- deployment hooks: needed for the batch-inference, deployable and edge capabilities ---

    def predict(self, frame: Any) -> Any:
        """Predictions for the rows of a table with the training columns (target optional)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement predict")

    def export_onnx(self, path: Path) -> Path:
        """Write the fitted model as ONNX at `path`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement export_onnx")

    def onnx_feed(self, frame: Any) -> dict[str, Any]:
        """The exported model's input arrays for the rows of `frame`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement onnx_feed")

    def onnx_labels(self, outputs: list[Any]) -> Any:
        """Predicted labels from the exported model's outputs."""
        raise NotImplementedError(f"{type(self).__name__} does not implement onnx_labels")

    def run(self) -> EstimatorResult:
        """Train, score and (for the final trainer) save; time the whole run."""
        started = time.perf_counter()
        self.train()
        result = self.calculate_score()
        if self.is_trainer:
            if self.output_dir is None:
                raise ValueError("a trainer estimator needs output_dir to save its model")
            result.model_path = self.save(self.output_dir)
        result.duration_s = time.perf_counter() - started
        return result
