"""`check_drift_check`: the contract of `automl_tasks.monitoring.drift.DriftCheck`."""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any

from automl_tasks.testing._common import require

ROWS = 1500


def _table(rows: int, seed: int, shift: float = 0.0) -> Any:  # -> pandas.DataFrame
    """Two numeric and one categorical column; `shift` moves `a` and the category mix, not `b`."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    mix = [0.2, 0.3, 0.5] if shift else [0.5, 0.3, 0.2]
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, rows),
            "b": rng.normal(0, 1, rows),
            "colour": rng.choice(["red", "green", "blue"], rows, p=mix),
            "_prediction": rng.integers(0, 2, rows),
        }
    )


def check_drift_check(cls: type, **options: Any) -> None:
    """Check that `cls(**options)` measures drift the way the drift pipeline reads it.

    Raises AssertionError naming the first broken rule:

    - a concrete subclass of DriftCheck with a non-empty `name`;
    - two samples of one distribution are no data drift, and no column is flagged;
    - a window whose `a` and `colour` moved a lot is data drift, with those two columns
      flagged and the unchanged `b` not;
    - the measurement covers every schema column, its shares lie in [0, 1] and agree with
      the flagged columns, its row counts are the tables', and the report file exists;
    - prediction drift is measured when asked for, and only then.
    """
    from automl_tasks.estimators.features import FeatureSchema
    from automl_tasks.monitoring.drift import DriftCheck, DriftMeasurement

    require(isinstance(cls, type) and issubclass(cls, DriftCheck), f"{cls!r} is not a subclass of DriftCheck")
    require(
        not inspect.isabstract(cls),
        f"{cls.__name__} leaves abstract methods unimplemented: {sorted(cls.__abstractmethods__)}",
    )
    require(
        isinstance(getattr(cls, "name", None), str) and cls.name.strip(),
        f"{cls.__name__}.name must be a non-empty string",
    )
    check = cls(**options)
    schema = FeatureSchema(numeric=("a", "b"), categorical=("colour",))
    with tempfile.TemporaryDirectory(prefix="loopml-check-") as tmp:
        same = check.measure(
            _table(ROWS, 0), _table(ROWS, 1), schema, drift_share=0.5, report_path=Path(tmp) / "same.html"
        )
        require(
            isinstance(same, DriftMeasurement),
            f"{cls.__name__}.measure returned {type(same).__name__}, not a DriftMeasurement",
        )
        _check_consistent(cls, same, schema, Path(tmp) / "same.html", with_prediction=False)
        require(
            not same.data_drift and same.drifted_columns == [],
            f"{cls.__name__}: two samples of one distribution were called drift (columns {same.drifted_columns})",
        )
        moved = check.measure(
            _table(ROWS, 0),
            _table(ROWS, 1, shift=1.5),
            schema,
            drift_share=0.5,
            report_path=Path(tmp) / "moved.html",
            prediction_kind="categorical",
        )
        _check_consistent(cls, moved, schema, Path(tmp) / "moved.html", with_prediction=True)
        require(
            moved.data_drift and sorted(moved.drifted_columns) == ["a", "colour"],
            f"{cls.__name__}: columns a and colour moved, b did not; it flagged {moved.drifted_columns} "
            f"(data drift {moved.data_drift})",
        )


def _check_consistent(cls: type, result: Any, schema: Any, report: Path, *, with_prediction: bool) -> None:
    columns = [c.column for c in result.columns]
    require(
        sorted(columns) == sorted(schema.columns),
        f"{cls.__name__}: measured columns {columns}; expected {list(schema.columns)}",
    )
    require(
        0.0 <= result.share_drifted <= 1.0, f"{cls.__name__}: share_drifted {result.share_drifted} is outside [0, 1]"
    )
    flagged = sum(c.drifted for c in result.columns) / len(result.columns)
    require(
        abs(result.share_drifted - flagged) < 1e-9,
        f"{cls.__name__}: share_drifted {result.share_drifted} disagrees with the flagged columns ({flagged})",
    )
    require(
        result.data_drift == (result.share_drifted >= result.drift_share),
        f"{cls.__name__}: data_drift {result.data_drift} disagrees with share {result.share_drifted} >= {result.drift_share}",
    )
    require(
        (result.reference_rows, result.current_rows) == (ROWS, ROWS),
        f"{cls.__name__}: row counts {(result.reference_rows, result.current_rows)}; the tables had {ROWS} rows each",
    )
    require(
        Path(result.report_path).exists() and Path(result.report_path) == report,
        f"{cls.__name__}: no report at {report}",
    )
    require(
        (result.prediction is not None) == with_prediction,
        f"{cls.__name__}: prediction drift {'missing' if with_prediction else 'measured unasked'}",
    )
