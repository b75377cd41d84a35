"""Ingest validation: every rule fails with the file, the column and the rule named."""

from __future__ import annotations

import pandas as pd
import pytest

from automl_tasks.core.errors import DataValidationError
from automl_tasks.data import read_table, resolve_task_type, validate_table


def _fails(frame, target="target", task_type="binary", source="t.csv"):
    with pytest.raises(DataValidationError) as info:
        validate_table(frame, source=source, target=target, task_type=task_type)
    return str(info.value)


def test_good_table_passes(breast_cancer_frame):
    validate_table(breast_cancer_frame, source="bc.csv", target="target", task_type="binary")


def test_missing_target_names_column_and_rule():
    message = _fails(pd.DataFrame({"a": [1, 2], "b": [0, 1]}), target="label", source="data.csv")
    assert "data.csv" in message and "'label'" in message and "target_exists" in message
    assert "columns are ['a', 'b']" in message


def test_single_class_target():
    message = _fails(pd.DataFrame({"a": [1, 2, 3], "target": [1, 1, 1]}))
    assert "at_least_two_classes" in message and "'target'" in message


def test_empty_table():
    message = _fails(pd.DataFrame({"a": pd.Series([], dtype=float), "target": pd.Series([], dtype=int)}))
    assert "table_not_empty" in message


def test_a_target_without_a_value_is_refused():
    message = _fails(pd.DataFrame({"a": [1.0, 2.0, 3.0], "target": [None, None, None]}), task_type="regression")
    assert "column 'target'" in message and "not_all_null" in message


def test_an_empty_feature_column_passes_and_is_left_out_of_the_model():
    """A spreadsheet's empty column carries no information: it is no reason to refuse the table."""
    from automl_tasks.features.roles import column_roles

    n = 20
    frame = pd.DataFrame({"a": range(n), "empty": [float("nan")] * n, "blank": [None] * n, "target": [0, 1] * (n // 2)})
    validate_table(frame, source="t.csv", target="target", task_type="binary")
    roles = {role.column: role for role in column_roles(frame, "target", "binary")}
    for column in ("empty", "blank"):
        assert roles[column].excluded and roles[column].why == "no value in any row"


def test_unreadable_type():
    frame = pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-01-02"]), "target": [0, 1]})
    message = _fails(frame)
    assert "column 'when'" in message and "readable_type" in message


def test_regression_target_must_be_numeric():
    message = _fails(pd.DataFrame({"a": [1.0, 2.0], "target": ["x", "y"]}), task_type="regression")
    assert "numeric_target" in message


def test_empty_file_is_reported_with_its_name(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataValidationError) as info:
        read_table(path)
    assert str(path) in str(info.value) and "table_not_empty" in str(info.value)


def test_task_type_inference():
    assert resolve_task_type("auto", pd.Series([0, 1, 0])) == "binary"
    assert resolve_task_type("auto", pd.Series(["a", "b", "c"])) == "multiclass"
    assert resolve_task_type("auto", pd.Series([0.5, 1.2, 3.3, 4.1])) == "regression"
    assert resolve_task_type("regression", pd.Series([0, 1])) == "regression"
    with pytest.raises(ValueError, match="task_type"):
        resolve_task_type("clustering", pd.Series([0, 1]))


def test_validation_writes_no_progress_bar(capfd, breast_cancer_frame):
    """Great Expectations' progress bars go to stderr, which Airflow's task log shows as errors."""
    validate_table(breast_cancer_frame, source="bc.csv", target="target", task_type="binary")
    assert "Calculating Metrics" not in capfd.readouterr().err
