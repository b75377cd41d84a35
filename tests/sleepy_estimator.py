"""A test algorithm whose trials take a known time: `sleep_s` seconds (sleeping, or
spinning the CPU when `busy` is true), score = -(x - 0.3)^2."""

from __future__ import annotations

import time
from pathlib import Path

from automl_tasks.estimators.base import Estimator, EstimatorResult

SPACE = """
params:
  - {name: x, type: float, range: [0, 1]}
  - {name: sleep_s, type: float_cat, range: [3.0]}
"""


class SleepyEstimator(Estimator):
    def train(self) -> None:
        seconds = float(self.model_args["sleep_s"])
        if not self.model_args.get("busy"):
            time.sleep(seconds)
            return
        end = time.process_time() + seconds  # CPU time, so a shared core stretches the trial
        while time.process_time() < end:
            pass

    def calculate_score(self) -> EstimatorResult:
        score = -((float(self.model_args["x"]) - 0.3) ** 2)
        return EstimatorResult(score=score, metrics={"score": score})

    def save(self, path: Path) -> str:
        raise NotImplementedError("the sleepy estimator is never a final trainer")


class EpochEstimator(SleepyEstimator):
    """Trains `run_epochs` instant epochs, reporting its score after each (the fidelity steps
    ASHA and Hyperband stop trials on)."""

    def train(self) -> None:
        epochs = self.run_epochs or 1
        for epoch in range(1, epochs + 1):
            self.report(self.calculate_score().score, epoch, last=epoch == epochs)
