"""Ensemble selection against the best single trial, on the same search (issue #11 item 3).

For each table of `automl_vs_flaml.py` and each split seed: one NoCode search in-process
(the pipeline's own steps: preprocess, plan_search, one worker, `--budget` seconds) on the
80% side of the split, then both final models of that one search: the best trial's refit
and the selected ensemble's, each through the refit check and the all-rows refit as the
task estimator does. Both are scored on the 20% the search never saw. Same search, same
splits: the difference is the ensemble's alone, which a run-to-run comparison of two
pipelines cannot isolate. It also says whether the registration rule
(`pipelines/ensembling.worth_it`) picked the better of the two, and what the candidate rule
buys: selection over the 10 best trials and each model family's best (the registered rule)
against the 10 best only, on the same search.

    PYTHONPATH=$PWD:$PWD/.bench-packages .venv/bin/python benchmarks/ensemble_vs_best_trial.py \
        --budget 30 --seeds 0 [--tables caravan,ames]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.automl_vs_flaml import TABLES, load_table, read_rows, score


def _split(x, y, task: str, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y if task != "regression" else None)


def _external_score(fit, x_test, y_test, task: str) -> float:
    from automl_tasks.estimators.features import feature_frame

    estimator = fit.estimator
    features = feature_frame(x_test, estimator.schema_)
    model = estimator.pipeline_
    prediction = model.predict(features) if task == "regression" else model.predict_proba(features)
    return score(task, y_test.to_numpy(), np.asarray(prediction))


def run_one(home: Path, table, seed: int, budget: int) -> dict:
    from automl_tasks.core.settings import Workspace
    from automl_tasks.estimators import TabularEstimator
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.pipelines.ensembling import select_ensemble, worth_it
    from automl_tasks.pipelines.intake import preprocess
    from automl_tasks.pipelines.nocode import plan_search
    from automl_tasks.pipelines.registration import best_trial, fit_final
    from automl_tasks.pipelines.requests import NoCodeRequest
    from automl_tasks.search import run_worker
    from automl_tasks.search.storage import load_study

    ws = Workspace.at(home / f"{table.key}-{seed}").ensure()
    x, y = load_table(table)
    x_train, x_test, y_train, y_test = _split(x, y, table.task, seed)
    path = ws.home / f"{table.key}.csv"
    x_train.assign(target__=y_train.to_numpy()).to_csv(path, index=False)
    metric = "r2" if table.task == "regression" else "roc_auc"
    request = NoCodeRequest(
        dataset=str(path),
        target="target__",
        task_type=table.task,
        metric=metric,
        n_trials=10_000,
        n_workers=1,
        time_budget_s=budget,
        family=table.key.replace("_", "-"),
        seed=seed,
    )
    run_name = f"ab-{table.key}-{seed}"
    pre = preprocess(ws, request, dag_run_id=run_name)
    study_name = f"{request.family}-{run_name}"
    plan_search(ws, request, pre, study_name)
    started = time.perf_counter()
    run_worker(ws, study_name, 0)
    searched = time.perf_counter() - started
    study, plan = load_study(ws.optuna_uri, study_name)
    trial = best_trial(study, plan)
    started = time.perf_counter()
    single = fit_final(TabularEstimator, plan, trial, ws.runs / study_name / "single")
    single_s = time.perf_counter() - started
    row = {
        "table": table.key,
        "seed": seed,
        "budget": budget,
        "trials": len(study.trials),
        "search_s": round(searched, 1),
        "single": _external_score(single, x_test, y_test, table.task),
        "single_fit_s": round(single_s, 1),
    }
    for family_best, prefix in ((True, ""), (False, "top_only_")):
        choice = select_ensemble(ws, study, plan, family_best=family_best)
        members = [t.number for t in choice.trials] if choice else []
        row[f"{prefix}member_trials"] = members
        if len(members) < 2:
            row.update({f"{prefix}ensemble": None, f"{prefix}members": len(members), f"{prefix}rule": False})
            continue
        if prefix and members == row["member_trials"] and row["ensemble"] is not None:  # same ensemble: same score
            fitted_score = row["ensemble"]
        else:
            started = time.perf_counter()
            ensemble = fit_final(TabularEstimator, plan, trial, ws.runs / study_name / f"{prefix}ensemble", choice)
            fitted_score = _external_score(ensemble, x_test, y_test, table.task)
            row[f"{prefix}ensemble_fit_s"] = round(time.perf_counter() - started, 1)
        row.update(
            {
                f"{prefix}ensemble": fitted_score,
                f"{prefix}members": len(members),
                f"{prefix}search_gain": choice.score - choice.best_single,
                f"{prefix}rule": worth_it(choice, Metric(metric)),
                f"{prefix}candidates": choice.candidates,
            }
        )
    return row


def registered_score(row: dict, prefix: str = "") -> float:
    """The external score of the model the registration rule picks under a candidate rule."""
    ensemble = row.get(f"{prefix}ensemble")
    return ensemble if ensemble is not None and row.get(f"{prefix}rule") else row["single"]


def report(rows: list[dict]) -> str:
    lines = [
        "| table | seed | trials | best trial | ensemble (members) | ensemble - best | search-rows gain | rule says | rule right |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["ensemble"] is None:
            lines.append(f"| {r['table']} | {r['seed']} | {r['trials']} | {r['single']:.4f} | - | - | - | single | - |")
            continue
        diff = r["ensemble"] - r["single"]
        chosen = r["ensemble"] if r["rule"] else r["single"]
        right = (
            "yes"
            if chosen >= max(r["ensemble"], r["single"]) - 1e-12
            else f"no ({chosen - max(r['ensemble'], r['single']):+.4f})"
        )
        lines.append(
            f"| {r['table']} | {r['seed']} | {r['trials']} | {r['single']:.4f} | {r['ensemble']:.4f} ({r['members']}) "
            f"| {diff:+.4f} | {r['search_gain']:+.4f} | {'ensemble' if r['rule'] else 'single'} | {right} |"
        )
    diffs = [r["ensemble"] - r["single"] for r in rows if r["ensemble"] is not None]
    if diffs:
        lines.append(
            f"\nensemble - best trial over {len(diffs)} searches: mean {np.mean(diffs):+.4f}, "
            f"better on {sum(d > 0 for d in diffs)}, worse on {sum(d < 0 for d in diffs)}"
        )
    compared = [r for r in rows if "top_only_member_trials" in r]
    if compared:
        lines += [
            "",
            "Candidates: the 10 best trials and each model family's best (registered now) against the 10 best only,",
            "the model the registration rule picks under each, on the same search:",
            "",
            "| table | seed | members (families' best) | members (10 best only) | registered (families' best) "
            "| registered (10 best only) | difference |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in compared:
            new, old = registered_score(r), registered_score(r, "top_only_")
            lines.append(
                f"| {r['table']} | {r['seed']} | {r['member_trials']} | {r['top_only_member_trials']} "
                f"| {new:.4f} | {old:.4f} | {new - old:+.4f} |"
            )
        gains = [registered_score(r) - registered_score(r, "top_only_") for r in compared]
        lines.append(
            f"\nfamilies' best - 10 best only over {len(gains)} searches: mean {np.mean(gains):+.4f}, "
            f"better on {sum(g > 0 for g in gains)}, worse on {sum(g < 0 for g in gains)}, "
            f"same model on {sum(r['member_trials'] == r['top_only_member_trials'] for r in compared)}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(t.key for t in TABLES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--out", default="ensemble_vs_best_trial.jsonl")
    parser.add_argument("--report", default="", help="only print the table of this results file")
    args = parser.parse_args()
    if args.report:
        print(report(read_rows(Path(args.report))))
        return
    logging.basicConfig(level=logging.WARNING)
    wanted = args.tables.split(",")
    home = Path(tempfile.mkdtemp(prefix="ens-ab-"))
    rows = []
    for seed in args.seeds:
        for table in (t for t in TABLES if t.key in wanted):
            row = run_one(home, table, seed, args.budget)
            rows.append(row)
            with Path(args.out).open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print(report(rows))


if __name__ == "__main__":
    main()
