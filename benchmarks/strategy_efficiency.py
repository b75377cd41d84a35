"""Search efficiency on the bundled datasets: best validation score at equal trial budgets.

Every strategy (and Optuna's TPE with its own defaults) searches the default tabular
space - without its MLP branch, to keep the run short - on the same splits, with the
same trial budget, for several seeds; reported is the mean ± standard error of the best
validation score. No Airflow: `automl_tasks.search.engine.optimize` with the tabular
estimator as the objective.

    .venv/bin/python benchmarks/strategy_efficiency.py [--trials 15] [--seeds 5] [--datasets breast_cancer diabetes]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nasbench201_strategies import OptunaDefaultTPE  # noqa: E402

from automl_tasks.data import bundled_frame  # noqa: E402
from automl_tasks.data.ingest import resolve_task_type  # noqa: E402
from automl_tasks.estimators import DataSpec, TabularEstimator  # noqa: E402
from automl_tasks.estimators.metrics import resolve_metric  # noqa: E402
from automl_tasks.search.engine import optimize  # noqa: E402
from automl_tasks.search.strategies import make_strategy  # noqa: E402
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, load_search_space  # noqa: E402

STRATEGIES = ["random", "optuna-tpe", "tpe", "gp", "cmaes", "nsga2"]


def space_without_mlp():
    document = yaml.safe_load(DEFAULT_TABULAR_SPACE.read_text())
    for param in document["params"]:
        if param["name"] == "model":
            param["range"] = [m for m in param["range"] if m != "mlp"]
            param["submodule"].pop("mlp", None)
    return load_search_space(yaml.safe_dump(document))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", nargs="+", default=["breast_cancer", "diabetes"])
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = space_without_mlp()
    print(f"{'dataset':<14} {'metric':<8} {'strategy':<11} {'best (mean)':>11} {'± se':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            frame = bundled_frame(name)
            task = resolve_task_type("auto", frame["target"])
            metric = resolve_metric("auto", task)
            path = Path(tmp) / f"{name}.parquet"
            frame.to_parquet(path)
            data = DataSpec(str(path), "target", task)

            def objective(config, report, data=data, metric=metric):
                return (
                    TabularEstimator(run_epochs=None, data=data, is_trainer=False, model_args=config, metric=metric)
                    .run()
                    .score
                )

            for strategy_name in STRATEGIES:
                bests = []
                for seed in range(args.seeds):
                    strategy = (
                        OptunaDefaultTPE(seed=seed, n_startup_trials=5)
                        if strategy_name == "optuna-tpe"
                        else make_strategy(strategy_name, seed=seed, n_startup_trials=5)
                    )
                    study = optimize(objective, space, strategy, n_trials=args.trials, directions=(metric.direction,))
                    bests.append(study.best_value)
                mean, se = statistics.fmean(bests), statistics.stdev(bests) / len(bests) ** 0.5
                print(f"{name:<14} {metric.name:<8} {strategy_name:<11} {mean:>11.4f} {se:>7.4f}", flush=True)


if __name__ == "__main__":
    main()
