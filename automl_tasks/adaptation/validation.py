"""Great Expectations rules for a table of texts with a label, and the texts' length profile.

Each failed rule is one line naming the file, the column and the rule, as for tables
(`automl_tasks.data.validation`), and nothing is stored when one fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import DataValidationError
from automl_tasks.data.validation import Rule, failed_rules

#: each class needs this many rows, so that stratified train/validation/test splits hold it
MIN_ROWS_PER_CLASS = 5


def _text_rules(frame: pd.DataFrame, text: str, target: str) -> list[tuple[Rule, object]]:
    import great_expectations.expectations as gxe

    rules: list[tuple[Rule, object]] = [
        (
            Rule("table_not_empty", None, "the table must have at least one row"),
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
        ),
        (
            Rule("text_column_exists", text, f"the text column {text!r} must exist"),
            gxe.ExpectColumnToExist(column=text),
        ),
        (
            Rule("target_exists", target, f"the target column {target!r} must exist"),
            gxe.ExpectColumnToExist(column=target),
        ),
    ]
    if text in frame.columns:
        rules += [
            (
                Rule("text_not_null", text, "every row needs a text (an empty cell reads as missing)"),
                gxe.ExpectColumnValuesToNotBeNull(column=text),
            ),
            (
                Rule("text_is_string", text, "the text column must hold strings (is it the right column?)"),
                gxe.ExpectColumnValuesToBeOfType(column=text, type_="str"),
            ),
            (
                Rule("text_not_blank", text, "a text must hold at least one non-space character"),
                gxe.ExpectColumnValuesToNotMatchRegex(column=text, regex=r"^\s*$"),
            ),
        ]
    if target in frame.columns:
        rules.append(
            (
                Rule("at_least_two_classes", target, "a classification target needs at least two classes"),
                gxe.ExpectColumnUniqueValueCountToBeBetween(column=target, min_value=2),
            )
        )
    return rules


def validate_texts(frame: pd.DataFrame, *, source: str, text: str, target: str) -> None:
    """Raise `DataValidationError` listing every broken rule; return None if the table is fit."""
    failures = failed_rules(frame, _text_rules(frame, text, target))
    if target in frame.columns and frame[target].nunique() >= 2:
        counts = frame[target].value_counts()
        small = counts[counts < MIN_ROWS_PER_CLASS]
        if len(small):
            failures.append(
                f"column {target!r}: rule min_rows_per_class: every class needs at least {MIN_ROWS_PER_CLASS} rows "
                f"for the train/validation/test splits (observed: {small.to_dict()})"
            )
    if failures:
        raise DataValidationError(source, failures)


def text_profile(texts: pd.Series, labels: pd.Series, token_lengths: list[int]) -> dict[str, Any]:
    """Length statistics (characters and tokens) and the class balance: what the advisor and
    the drift check compare, and what tells a person how much `max_seq_len` truncates."""
    chars = texts.str.len().to_numpy()
    tokens = np.asarray(token_lengths)

    def stats(values: np.ndarray) -> dict[str, float]:
        return {
            "min": float(values.min()),
            "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)),
            "max": float(values.max()),
            "mean": float(values.mean()),
        }

    return {
        "rows": int(len(texts)),
        "characters": stats(chars),
        "tokens": stats(tokens),
        "classes": {str(k): int(v) for k, v in labels.value_counts().items()},
    }
