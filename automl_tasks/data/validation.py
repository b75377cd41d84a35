"""Validate an ingested table with Great Expectations before anything is stored.

Each failed rule becomes one line naming the file, the column and the rule, so a user
can fix the data without reading a validation report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from automl_tasks.core.errors import DataValidationError
from automl_tasks.data.splits import min_scored_class_rows

_READABLE_KINDS = "biufcOSUb"  # bool, ints, floats, complex, object, strings


@dataclass(frozen=True)
class Rule:
    """One expectation with the words a user sees when it fails."""

    name: str
    column: str | None
    explanation: str


def _quiet_great_expectations() -> None:
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _rules(frame: pd.DataFrame, target: str, task_type: str) -> list[tuple[Rule, object]]:
    import great_expectations.expectations as gxe

    rules: list[tuple[Rule, object]] = [
        (
            Rule("table_not_empty", None, "the table must have at least one row"),
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
        ),
        (
            Rule("target_exists", target, f"the target column {target!r} must exist"),
            gxe.ExpectColumnToExist(column=target),
        ),
    ]
    if target in frame.columns and task_type in ("binary", "multiclass"):
        rules.append(
            (
                Rule("at_least_two_classes", target, "a classification target needs at least two classes"),
                gxe.ExpectColumnUniqueValueCountToBeBetween(column=target, min_value=2),
            )
        )
    if target in frame.columns and task_type == "regression":
        rules.append(
            (
                Rule("numeric_target", target, "a regression target must be numeric"),
                gxe.ExpectColumnValuesToBeInTypeList(
                    column=target, type_list=["int8", "int16", "int32", "int64", "float32", "float64"]
                ),
            )
        )
    if len(frame) and target in frame.columns:
        # the target only: a feature column without a value (a spreadsheet's empty column) is
        # one more column without information, left out of the model (features.roles: constant)
        rules.append(
            (
                Rule("not_all_null", target, "the target column must have at least one value"),
                gxe.ExpectColumnValuesToNotBeNull(column=target, mostly=0.5 / len(frame)),
            )
        )
    return rules


def _type_failures(frame: pd.DataFrame) -> list[str]:
    """Columns whose dtype loopml cannot learn from (dates, intervals, mixed objects)."""
    failures = []
    for column, dtype in frame.dtypes.items():
        if dtype.kind not in _READABLE_KINDS and not isinstance(dtype, pd.CategoricalDtype):
            failures.append(f"column {column!r}: rule readable_type: dtype {dtype} is not numeric, boolean or text")
    return failures


def _finite_failures(frame: pd.DataFrame) -> list[str]:
    """Numeric columns holding inf or -inf: every trial would fail on them much later
    (scalers and estimators refuse infinities), so they are refused here with the column."""
    failures = []
    for column in frame.columns:
        series = frame[column]
        if not pd.api.types.is_float_dtype(series):
            continue
        infinite = np.isinf(series.to_numpy(dtype=float, na_value=np.nan))
        if infinite.any():
            rows = ", ".join(str(i + 1) for i in np.flatnonzero(infinite)[:5])
            failures.append(
                f"column {column!r}: rule finite_values: {int(infinite.sum())} value(s) are inf or -inf "
                f"(data rows {rows}{', ...' if infinite.sum() > 5 else ''}); use a finite number, "
                "or leave the cell empty to mark it missing"
            )
    return failures


def _class_failures(frame: pd.DataFrame, target: str, task_type: str) -> list[str]:
    """A classification target without two classes that have rows enough to be held out
    and scored (`min_scored_class_rows`): every trial's score would be undefined. Rarer
    classes beside two such are fine: models are fitted on them (data/splits)."""
    if task_type not in ("binary", "multiclass") or target not in frame.columns:
        return []
    counts = frame[target].dropna().value_counts()
    if len(counts) < 2:
        return []  # the rule at_least_two_classes says so
    need = min_scored_class_rows()
    if int((counts >= need).sum()) >= 2:
        return []
    shown = ", ".join(f"{label!r}: {int(n)}" for label, n in counts.head(10).items())
    return [
        f"column {target!r}: rule enough_rows_per_class: a classification target needs at least two classes "
        f"with {need} rows or more each, so rows of each can be held out to score the models "
        f"(rows per class: {shown}{', ...' if len(counts) > 10 else ''})"
    ]


def failed_rules(frame: pd.DataFrame, rules: list[tuple[Rule, object]]) -> list[str]:
    """Run the expectations of `rules` on `frame` with Great Expectations; one line per failed rule."""
    _quiet_great_expectations()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # its progress bars go to stderr, which Airflow's task log shows as error lines
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("loopml")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("whole")
    )
    # the suite is stored once with every expectation: `suite.add_expectation` stores the
    # whole suite again per call (1.3 s for a 74-column table, against 0.25 s in one write)
    suite = context.suites.add(
        gx.ExpectationSuite(name="loopml_ingest", expectations=[expectation for _, expectation in rules])
    )
    rule_by_id = {str(added.id): rule for (rule, _), added in zip(rules, suite.expectations, strict=True)}
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="loopml_ingest", data=batch_definition, suite=suite)
    )
    result = definition.run(batch_parameters={"dataframe": frame})

    failures: list[str] = []
    for outcome in result.results:
        if outcome.success:
            continue
        rule = rule_by_id[str(outcome.expectation_config.id)]
        where = f"column {rule.column!r}" if rule.column else "table"
        observed = outcome.result.get("observed_value") if outcome.result else None
        detail = f" (observed: {observed})" if observed is not None else ""
        failures.append(f"{where}: rule {rule.name}: {rule.explanation}{detail}")
        if rule.name.endswith("_exists"):
            failures[-1] += f"; columns are {list(map(str, frame.columns))}"
    return failures


def validate_table(frame: pd.DataFrame, *, source: str, target: str, task_type: str, to_split: bool = True) -> None:
    """Raise `DataValidationError` listing every broken rule; return None if the table is fit.
    `to_split`: the table is one models are trained on, split into rows held out to score
    them (so it needs classes with rows enough to hold out); False for rows only scored on."""
    failures = failed_rules(frame, _rules(frame, target, task_type))
    failures.extend(_type_failures(frame))
    failures.extend(_finite_failures(frame))
    if to_split:
        failures.extend(_class_failures(frame, target, task_type))
    if failures:
        raise DataValidationError(source, failures)
