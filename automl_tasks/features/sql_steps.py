"""SQL feature steps: a person's `SELECT` over the input rows, in DuckDB's dialect.

The rows are the table `input`. The step's result columns that `input` does not have become
new features. Each step runs in its own in-memory DuckDB connection with external access
off (no files, network or extensions: DuckDB's own `enable_external_access`, locked), no
replacement scans of Python variables, and only a single `SELECT` statement accepted.

A step must keep one row per input row, in input order, and a row's features may depend on
that row alone: serving runs the step on the request's rows, often one. `check_sql_step`
proves both on a sample before any search starts, by running the rows together and one by
one and comparing.

A run is bounded: `SQL_MEMORY_LIMIT` (DuckDB's own limit, locked with the rest) and
`SQL_TIMEOUT_S` (a watchdog interrupts the connection), each a clear error naming the step,
so a runaway step never hangs data_preprocess or a served request.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import FeaturePipelineError

INPUT_TABLE = "input"
#: rows of the validation sample, and of those run one by one
CHECK_ROWS, CHECK_SINGLE_ROWS = 200, 12
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
SQL_MEMORY_LIMIT = "2GB"
#: the longest one run of a step may take before it is interrupted
SQL_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class SqlStep:
    """One named SQL feature step."""

    name: str
    sql: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "sql": self.sql}


def parse_sql_steps(value: Any) -> tuple[SqlStep, ...]:
    """The form's `sql_features`: a list of {"name", "sql"}; clear errors otherwise."""
    if value in (None, "", []):
        return ()
    if not isinstance(value, list):
        raise FeaturePipelineError(f"sql_features must be a list of {{name, sql}} objects; got {type(value).__name__}")
    steps, names = [], set()
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"name", "sql"}:
            raise FeaturePipelineError(
                f"sql_features[{i}] must be an object with exactly 'name' and 'sql'; got {item!r}"
            )
        name, sql = str(item["name"]), str(item["sql"]).strip()
        if not _NAME.match(name):
            raise FeaturePipelineError(f"sql_features[{i}].name {name!r} must be a letter then letters, digits or _")
        if name in names:
            raise FeaturePipelineError(f"sql_features[{i}].name {name!r} is used twice")
        if not sql:
            raise FeaturePipelineError(f"SQL feature step {name!r} is empty")
        names.add(name)
        steps.append(SqlStep(name, sql))
    return tuple(steps)


_LOCAL = threading.local()


def _connection():
    """This thread's DuckDB connection (made once per thread and process: a connection costs
    ~1 ms, which a served single-row request would pay per step; DuckDB connections are not
    shared across threads)."""
    if getattr(_LOCAL, "pid", None) != os.getpid():  # none yet, or inherited through a fork
        _LOCAL.con, _LOCAL.pid = _connect(), os.getpid()
    return _LOCAL.con


def _connect():
    import duckdb

    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "python_enable_replacements": False,
            "threads": 1,
            "memory_limit": SQL_MEMORY_LIMIT,
        },
    )
    con.execute("SET lock_configuration = true")
    return con


class _Watchdog:
    """Interrupts a connection whose query runs past `SQL_TIMEOUT_S`: one daemon thread per
    process polling the running queries' deadlines (a `threading.Timer` per query costs a
    thread start, 0.13 ms, which every served request would pay)."""

    POLL_S = 0.2

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked task starts its own, with a fresh lock

    def _reset(self) -> None:
        self._running: dict[int, tuple[float, Any]] = {}  # thread id -> (deadline, connection)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def limit(self, con: Any):
        key = threading.get_ident()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, daemon=True, name="sql-step-watchdog")
                self._thread.start()
            self._running[key] = (time.monotonic() + SQL_TIMEOUT_S, con)
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(key, None)

    def _watch(self) -> None:
        while True:
            time.sleep(self.POLL_S)
            self._interrupt_overdue(time.monotonic())

    def _interrupt_overdue(self, now: float) -> None:
        # a function of its own: the loop's frame keeps no connection alive between polls
        with self._lock:
            for deadline, con in self._running.values():
                if now > deadline:
                    con.interrupt()


_WATCHDOG = _Watchdog()


@functools.lru_cache(maxsize=256)
def _statement(step: SqlStep) -> str:
    """The step's one SELECT statement; FeaturePipelineError for anything else (parsed once)."""
    import duckdb

    try:
        statements = duckdb.extract_statements(step.sql)
    except duckdb.Error as exc:
        raise FeaturePipelineError(f"SQL feature step {step.name!r}: {exc}") from None
    if len(statements) != 1:
        raise FeaturePipelineError(f"SQL feature step {step.name!r} must be one statement; got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise FeaturePipelineError(
            f"SQL feature step {step.name!r} must be a SELECT over {INPUT_TABLE!r}; got a {kind.name} statement"
        )
    return step.sql.strip().rstrip(";")


def run_sql_step(frame: pd.DataFrame, step: SqlStep) -> pd.DataFrame:
    """The new columns `step` derives from `frame` (same index, one row per input row)."""
    import duckdb

    sql = _statement(step)
    con = _connection()
    try:
        con.register(INPUT_TABLE, frame.reset_index(drop=True))
        with _WATCHDOG.limit(con):
            result = con.execute(sql).df()
    except duckdb.InterruptException:
        _LOCAL.pid = None  # an interrupted connection is replaced, not reused
        con.close()
        raise FeaturePipelineError(
            f"SQL feature step {step.name!r} ran longer than {SQL_TIMEOUT_S:g} s on {len(frame)} rows and was stopped"
        ) from None
    except duckdb.Error as exc:
        raise FeaturePipelineError(f"SQL feature step {step.name!r}: {exc}") from None
    finally:
        if _LOCAL.pid is not None:
            con.unregister(INPUT_TABLE)
    if len(result) != len(frame):
        raise FeaturePipelineError(
            f"SQL feature step {step.name!r} returned {len(result)} rows for {len(frame)} input rows: "
            "a feature step must keep one row per input row (no WHERE, GROUP BY, JOIN or DISTINCT that changes it)"
        )
    new = [c for c in result.columns if c not in frame.columns]
    if not new:
        raise FeaturePipelineError(
            f"SQL feature step {step.name!r} derives no new column (its columns all exist in {INPUT_TABLE!r})"
        )
    result = result[new]
    result.index = frame.index
    return result


def check_sql_step(frame: pd.DataFrame, step: SqlStep) -> list[str]:
    """Validate `step` on a sample of `frame` (without the target): it runs, keeps the rows,
    and gives each row the same features alone as in a batch. Returns its new columns."""
    sample = frame.sample(min(CHECK_ROWS, len(frame)), random_state=0) if len(frame) else frame
    together = run_sql_step(sample, step)
    for position in range(min(CHECK_SINGLE_ROWS, len(sample))):
        alone = run_sql_step(sample.iloc[[position]], step)
        if not _same_row(together.iloc[position], alone.iloc[0]):
            raise FeaturePipelineError(
                f"SQL feature step {step.name!r} gives a row different features alone than among other rows "
                f"(row {position} of the check sample): a window or aggregate over rows cannot run at serving time, "
                "where a request may hold one row"
            )
    return [str(c) for c in together.columns]


def _same_row(a: pd.Series, b: pd.Series) -> bool:
    for left, right in zip(a.tolist(), b.tolist(), strict=True):
        if pd.isna(left) and pd.isna(right):
            continue
        if isinstance(left, (int, float, np.number)) and isinstance(right, (int, float, np.number)):
            if not np.isclose(float(left), float(right), rtol=1e-9, atol=1e-12):
                return False
        elif left != right:
            return False
    return True
