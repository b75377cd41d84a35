"""The runtime a black-box attack queries: the model's own ONNX export under ONNX Runtime.

HopSkipJump asks about a hundred questions in sequence, a few points each (coalesce.py
batches the rows' questions, not the steps). A scikit-learn pipeline answers each with
milliseconds of Python overhead per member, whatever the batch: 80 ms for a 9-member
ensemble, so its attack took 10-20 s; ONNX Runtime answers the same call in about 1.5 ms
(benchmarks/black_box_attack_runtime.py). The export is of the very model the report
is on (the one scored on held-out rows), checked for parity on those rows before it is used.
The attack queries the native model, and says why, when the export could answer its points
otherwise (a graph fed float32) or cannot be made or disagrees. A graph that computes
feature columns itself answers as the model does because the attack makes those columns
from its moved sources too (`TrustSubject.recompute`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: the file the attacked model is exported to, in the report's working folder
QUERY_MODEL_FILE = "trust_queries.onnx"
#: batched model calls a black-box attack makes (115-170 seen on 20 rows), to weigh an export
ATTACK_CALLS = 130
#: held-out rows one timed native call is made on (the attack's rows)
TIMED_ROWS = 20


def onnx_query_proba(
    pipeline: Any,
    schema: Any,
    workdir: Path,
    check_features: pd.DataFrame,
    onnx_path: Path | None = None,
    export_s: float | None = None,
) -> Callable[[pd.DataFrame], np.ndarray] | None:
    """`predict_proba` of `pipeline` through its ONNX export (`onnx_path` when that file is
    already its export), or None, with the reason in the log, when the export fails or
    disagrees with the native model on `check_features`, or when a new export would cost
    more than it saves: `export_s` (what exporting a model like this one took) against
    `ATTACK_CALLS` native calls. Why: a 5-member ensemble with a 4,000-tree LightGBM took 21 s
    to export and its attack 13 s natively, 4 s on ONNX Runtime."""
    from automl_tasks.deploy.onnx_model import OnnxModel, check_parity
    from automl_tasks.estimators.onnx.conversion import export_pipeline, numeric_dtype

    why_not = _not_the_same_function(pipeline, numeric_dtype) or _not_worth_exporting(
        pipeline, check_features, export_s if onnx_path is None else None
    )
    if why_not:
        log.info("trust report: the attack and the noise curves query the native model (%s)", why_not)
        return None
    started = time.perf_counter()
    try:
        path = onnx_path or export_pipeline(pipeline, schema, workdir / QUERY_MODEL_FILE)
        model = OnnxModel(path, schema)
        check_parity(pipeline, model, check_features)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the attack on the native model, said here
        log.warning(
            "trust report: the attack and the noise curves query the native model (no ONNX model to query: %s)", exc
        )
        return None

    def proba(features: pd.DataFrame) -> np.ndarray:
        return model.run(features)[1]

    made = "exported and checked" if onnx_path is None else "checked"
    log.info(
        "trust report: the attack and the noise curves query the model's ONNX export (%s, %s in %.1f s)",
        path.name,
        made,
        time.perf_counter() - started,
    )
    return proba


def _not_worth_exporting(pipeline: Any, check_features: pd.DataFrame, export_s: float | None) -> str:
    """Why a new export would cost more than the attack saves by it, or "" (also when its
    cost is unknown). The native attack's time is estimated from one timed call on the
    attack's number of rows: a lower bound, as its calls carry more points (so an export is
    rather made than not)."""
    if not export_s:
        return ""
    started = time.perf_counter()
    pipeline.predict_proba(check_features.iloc[:TIMED_ROWS])
    native_s = ATTACK_CALLS * (time.perf_counter() - started)
    if export_s <= native_s:
        return ""
    return f"exporting it would take ~{export_s:.0f} s, its {ATTACK_CALLS} calls natively ~{native_s:.0f} s"


def _not_the_same_function(pipeline: Any, numeric_dtype: Callable[[Any], type]) -> str:
    """Why the export would answer the attack's points otherwise than the model, or "".

    Parity on held-out rows does not cover the points an attack makes: a graph fed float32
    can judge a point on the decision boundary differently from one batch to the next (which
    sent ART's step-size search round for ever). (A graph that computes feature columns
    itself is the same function on the attack's points: the attack computes them too.)"""
    if numeric_dtype(pipeline) is not np.float64:
        return "its ONNX graph is fed float32, whose answers on the decision boundary can change with the batch"
    return ""
