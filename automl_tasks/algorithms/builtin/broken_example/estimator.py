"""An estimator whose training diverges: every score is NaN (the smoke test's bad example)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from automl_tasks.estimators.base import Estimator, EstimatorResult


class DivergingEstimator(Estimator):
    def train(self) -> None:
        self.weights_ = np.array([np.inf]) * float(self.model_args["step_size"]) - np.inf

    def calculate_score(self) -> EstimatorResult:
        score = float(self.weights_[0])  # inf - inf: NaN
        return EstimatorResult(score=score, metrics={"score": score})

    def save(self, path: Path) -> str:
        raise RuntimeError("nothing to save: training diverged")
