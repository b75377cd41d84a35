"""Drift-check time for 10k, 100k and 1M rows x 50 columns (40 numeric, 10 categorical).

Times `measure_drift` (Evidently data drift on every column plus prediction drift, and
the HTML report) with a current window as large as the reference and 10 shifted columns.
Windows above `max_rows` (default 100k, the family setting) are sampled with a fixed
seed; `--unsampled` also times the largest size without sampling.

    .venv/bin/python benchmarks/drift_check_time.py [--sizes 10000 100000 1000000] [--unsampled]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from automl_tasks.estimators.features import FeatureSchema
from automl_tasks.monitoring.drift import measure_drift
from automl_tasks.monitoring.drift_settings import DriftSettings

NUMERIC, CATEGORICAL = 40, 10


def table(rows: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.normal(shift if i < 10 else 0.0, 1.0, rows) for i in range(NUMERIC)}
    for i in range(CATEGORICAL):
        data[f"c{i}"] = rng.choice(["a", "b", "c", "d", "e"], rows)
    data["_prediction"] = rng.integers(0, 2, rows)
    return pd.DataFrame(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--unsampled", action="store_true", help="also time the largest size without sampling")
    args = parser.parse_args()
    schema = FeatureSchema(tuple(f"x{i}" for i in range(NUMERIC)), tuple(f"c{i}" for i in range(CATEGORICAL)))
    default_max = DriftSettings().max_rows
    runs = [(n, default_max) for n in args.sizes]
    if args.unsampled:
        runs.append((max(args.sizes), max(args.sizes)))
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: Evidently's import and first report are not timed
        measure_drift(table(500, 0, 0.0), table(500, 1, 0.5), schema, drift_share=0.3, report_path=Path(tmp) / "w.html")
    print(f"{'rows':>9} {'cols':>4} {'tested rows':>11} {'seconds':>8} {'drifted':>7} {'rows/s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for rows, max_rows in runs:
            reference, current = table(rows, 0, 0.0), table(rows, 1, 0.5)
            started = time.perf_counter()
            result = measure_drift(
                reference,
                current,
                schema,
                drift_share=0.3,
                report_path=Path(tmp) / f"report-{rows}.html",
                prediction_kind="categorical",
                max_rows=max_rows,
            )
            seconds = time.perf_counter() - started
            print(
                f"{rows:>9} {NUMERIC + CATEGORICAL:>4} {result.current_rows:>11} {seconds:>8.1f} "
                f"{len(result.drifted_columns):>7} {rows / seconds:>10.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
