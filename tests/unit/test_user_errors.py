"""Only a UserError fails an Airflow task without retry; any other exception is a fault."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from automl_tasks.core.errors import (
    ConfigurationError,
    DataValidationError,
    ExportError,
    InvalidValueError,
    LoopmlError,
    UserError,
)
from automl_tasks.data.ingest import resolve_task_type
from automl_tasks.estimators import estimator_class
from automl_tasks.estimators.metrics import resolve_metric
from automl_tasks.families.aliases import check_family_name
from operators._runtime import user_errors_fail_fast


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("n_trials must be in [1, 1000]"),
        DataValidationError("x.csv", ["column 'a': rule not_null"]),
        InvalidValueError("metric 'rmse' does not fit a binary task"),
    ],
)
def test_a_user_error_fails_the_task_without_retry(error):
    with pytest.raises(AirflowFailException, match=str(error).splitlines()[0][:20]):
        with user_errors_fail_fast():
            raise error


@pytest.mark.parametrize(
    "error", [ValueError("operands could not be broadcast"), KeyError("x"), ExportError("converter failed")]
)
def test_a_fault_is_not_turned_into_a_user_error(error):
    with pytest.raises(type(error)):
        with user_errors_fail_fast():
            raise error


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: resolve_metric("rmse", "binary"), "does not fit a binary task"),
        (lambda: check_family_name("no spaces"), "model family name"),
        (lambda: estimator_class("tabular"), "is not a 'package.module:Class' reference"),
        (lambda: estimator_class("pathlib:Path"), "is not an Estimator subclass"),
        (lambda: resolve_task_type("clustering", None), "task_type must be"),
    ],
)
def test_input_validation_raises_a_user_error_that_is_still_a_value_error(call, message):
    with pytest.raises(InvalidValueError, match=message) as caught:
        call()
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert isinstance(caught.value, LoopmlError)
