"""Why the MLP's final refit lost the quality its search trial validated, and the fix.

The issue's configuration (torch MLP, 2 layers of 64 units, learning rate 0.016, 100
epochs) on a price table with a target near 1e6 (`tests/price_table.py`, 2,930 rows as
in the report), for several split seeds, with early stopping off (the old training loop)
and on (now the default). Per seed it prints:
  trial_valid  the search trial's score: fit on train, scored on validation
  trial_test   the same trial model scored on the test split (split noise alone)
  refit_test   the final refit: fit on train+validation, scored on test
  epochs       epochs the refit ran / the epoch whose weights it kept

Run: python benchmarks/refit_stability.py [--seeds 3] [--rows 2930]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from automl_tasks.estimators import DataSpec, Metric, TabularEstimator  # noqa: E402
from tests.price_table import price_table  # noqa: E402

CONFIG = {
    "model": "mlp",
    "model.mlp.hidden_units": 64,
    "model.mlp.n_layers": 2,
    "model.mlp.learning_rate": 0.016,
    "model.mlp.epochs": 100,
    "model.mlp.weight_decay": 1e-4,
    "imputation": "median",
    "scaling": "zscore",
    "categorical_encoding": "onehot",
}


def _fit(path: str, seed: int, config: dict, trainer: bool) -> TabularEstimator:
    data = DataSpec(path, "price", "regression", split_seed=seed)
    estimator = TabularEstimator(
        run_epochs=None, data=data, is_trainer=trainer, model_args=config, metric=Metric("r2"), output_dir=None
    )
    estimator.train()
    return estimator


def _r2(estimator: TabularEstimator, rows: np.ndarray) -> float:
    features, truth = estimator.features_.iloc[rows], estimator.target_[rows]
    return estimator.metric(truth, estimator.pipeline_.predict(features))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2930)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "price.parquet")
        price_table(args.rows).to_parquet(path)
        for label, fraction in (("early stopping off (old loop)", 0.0), ("early stopping on (default)", 0.1)):
            config = {**CONFIG, "model.mlp.validation_fraction": fraction}
            print(f"\n{label}\nseed  trial_valid  trial_test  refit_test  epochs(run/kept)")
            gaps = []
            for seed in range(args.seeds):
                trial = _fit(path, seed, config, trainer=False)
                refit = _fit(path, seed, config, trainer=True)
                valid, trial_test = _r2(trial, trial.splits_.valid), _r2(trial, trial.splits_.test)
                refit_test = _r2(refit, refit.splits_.test)
                model = refit.pipeline_.named_steps["model"]
                gaps.append(valid - refit_test)
                print(
                    f"{seed:>4}  {valid:11.3f}  {trial_test:10.3f}  {refit_test:10.3f}  "
                    f"{model.n_epochs_run_}/{model.best_epoch_}"
                )
            print(f"mean trial_valid - refit_test: {np.mean(gaps):.3f}")


if __name__ == "__main__":
    main()
