"""Search time spent measuring trials on the deployment target (issue #12; goal <= 15%).

Draws configurations of the default tabular space with a seeded random sampler, trains
each one as a search trial (`search.worker.train_config`) and measures it on the target
the way a worker does (`search.deployment.measure_trial`: ONNX export, compile on the
target's engine through the compile cache, parity, batch-1 latency), timing both.
Prints per-model-kind seconds and the measurement's share of the trial time.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.search_target_overhead [--dataset breast_cancer] [--trials 12] [--target cloud-cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast_cancer", help="a bundled table")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--target", default="cloud-cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import optuna

    from automl_tasks.core.settings import Workspace
    from automl_tasks.data import DatasetStore, bundled_frame
    from automl_tasks.estimators import DataSpec
    from automl_tasks.search.deployment import measure_trial
    from automl_tasks.search.plan import SearchPlan
    from automl_tasks.search.worker import train_config
    from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, load_search_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ws = Workspace.at(tempfile.mkdtemp(prefix="loopml-bench-")).ensure()
    frame = bundled_frame(args.dataset)
    stored = DatasetStore(ws.datasets, ws.dvc_remote).put(args.dataset, frame)
    task = {"breast_cancer": "binary", "diabetes": "regression"}.get(args.dataset, "multiclass")
    metric = "r2" if task == "regression" else "roc_auc" if task == "binary" else "accuracy"
    space = load_search_space(DEFAULT_TABULAR_SPACE.read_text())
    plan = SearchPlan(
        study_name="bench",
        family=args.dataset,
        data=DataSpec(str(stored.path), "target", task),
        dataset_uri=stored.uri,
        metric=metric,
        direction="minimize" if metric in ("rmse", "mae", "log_loss") else "maximize",
        space_yaml=DEFAULT_TABULAR_SPACE.read_text(),
        space_hash=space.hash,
        n_trials=args.trials,
        time_budget_s=3600,
        deadline=time.time() + 3600,
        n_workers=1,
        experiment_id="0",
        parent_run_id="",
        deploy_target=args.target,
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    train_s: dict[str, list[float]] = defaultdict(list)
    measure_s: dict[str, list[float]] = defaultdict(list)
    verdicts: dict[str, set[str]] = defaultdict(set)
    for number in range(args.trials):
        trial = study.ask()
        config = space.sample(trial)
        kind = config["model"]
        started = time.perf_counter()
        estimator, _, _ = train_config(plan, config)
        train_s[kind].append(time.perf_counter() - started)
        started = time.perf_counter()
        deployment = measure_trial(ws, plan, estimator, ws.runs / f"trial-{number}")
        measure_s[kind].append(time.perf_counter() - started)
        verdicts[kind].add("ok" if deployment.deployable else deployment.verdict.split(":")[1].strip())
        study.tell(trial, 0.0)
    print(f"dataset {args.dataset} ({len(frame)} rows), target {args.target}, {args.trials} trials, seed {args.seed}")
    print(f"{'model':15} {'n':>3} {'train s (median)':>17} {'measure s (median)':>19}  verdicts")
    for kind in sorted(train_s):
        print(
            f"{kind:15} {len(train_s[kind]):3d} {statistics.median(train_s[kind]):17.3f} "
            f"{statistics.median(measure_s[kind]):19.3f}  {sorted(verdicts[kind])}"
        )
    total_train = sum(sum(v) for v in train_s.values())
    total_measure = sum(sum(v) for v in measure_s.values())
    first = next(iter(measure_s.values()))[0] if measure_s else 0.0
    print(
        f"total: train {total_train:.2f}s, measure {total_measure:.2f}s (first trial's {first:.2f}s includes "
        f"engine start-up); measurement share of trial time {total_measure / (total_train + total_measure):.1%}"
    )


if __name__ == "__main__":
    main()
