"""LabelSpec: one canonical label form for training, the user's type for answers (issue #18)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.errors import DataValidationError
from automl_tasks.core.labels import LabelError, LabelSpec, normalise_feedback_labels, normalise_target


@pytest.mark.parametrize(
    ("target", "kind", "canonical", "classes"),
    [
        (pd.Series([3, 1, 3]), "int", [3, 1, 3], (1, 3)),
        (pd.Series([1.0, 0.0, 2.0]), "float", [1, 0, 2], (0.0, 1.0, 2.0)),
        (pd.Series([True, False, True]), "bool", [1, 0, 1], (False, True)),
        (pd.Series(["yes", "no", "yes"]), "str", ["yes", "no", "yes"], ("no", "yes")),
        (pd.Series(["b", "a", "b"], dtype="category"), "str", ["b", "a", "b"], ("a", "b")),
        (pd.Series([0.5, 1.5, 0.5]), "float", ["0.5", "1.5", "0.5"], (0.5, 1.5)),
    ],
)
def test_each_label_kind_round_trips_through_its_canonical_form(target, kind, canonical, classes):
    spec = LabelSpec.infer(target, "binary")
    assert (spec.kind, spec.classes) == (kind, classes)
    encoded = spec.encode(target)
    assert encoded.tolist() == canonical
    assert encoded.dtype == (np.int64 if isinstance(canonical[0], int) else object)
    decoded = spec.decode(encoded).tolist()
    assert decoded == pd.Series(target).astype(object).tolist()
    assert LabelSpec.from_json(spec.to_json()) == spec


def test_feedback_labels_in_json_types_become_canonical_and_bad_ones_are_named():
    spec = LabelSpec.infer(pd.Series([0, 1]), "binary")
    window = pd.DataFrame({"x": [1, 2, 3, 4], "target": [1.0, None, 0.0, 1.0]})  # a NaN made them floats
    assert normalise_feedback_labels(window, "target", spec, source="log")["target"].tolist() == [1, 0, 1]
    assert normalise_feedback_labels(window, "target", spec, source="log")["target"].dtype == np.int64
    with pytest.raises(DataValidationError, match=r"column 'target': rule label_type: label 'maybe'"):
        normalise_feedback_labels(window.assign(target=["maybe", 1, 0, 1]), "target", spec, source="log")
    with pytest.raises(LabelError, match="whole numbers"):
        spec.encode([0.5])
    assert LabelSpec("bool", (False, True)).encode([True, 0, "false", np.True_]).tolist() == [1, 0, 0, 1]
    assert LabelSpec("bool", (False, True)).with_classes(np.array([True, False])).classes == (False, True)


def test_tables_lose_unlabelled_rows_and_regression_targets_become_floats():
    frame = pd.DataFrame({"x": [1, 2, 3], "target": [10, None, 30]})
    table, spec = normalise_target(frame, "target", "regression", source="t.csv")
    assert spec.kind == "number" and table["target"].tolist() == [10.0, 30.0] and len(table) == 2


def test_a_runs_label_spec_is_read_back_and_a_run_without_one_has_none(workspace):
    from automl_tasks.core.labels import LABEL_SPEC_FILE, load_label_spec
    from automl_tasks.core.tracking import ensure_experiment, mlflow_client

    client = mlflow_client(workspace)
    experiment = ensure_experiment(workspace, "labels")
    with_spec, without = client.create_run(experiment).info.run_id, client.create_run(experiment).info.run_id
    spec = LabelSpec.infer(pd.Series(["yes", "no"]), "binary")
    client.log_text(with_spec, spec.to_json(), LABEL_SPEC_FILE)

    assert load_label_spec(with_spec) == spec
    assert load_label_spec(without) is None
    assert load_label_spec("0" * 32) is None  # a run that no longer exists


def test_a_store_that_cannot_be_read_raises_instead_of_dropping_the_labels(monkeypatch):
    """None would serve the version in its label codes, silently."""
    import mlflow

    from automl_tasks.core.labels import load_label_spec

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri("http://127.0.0.1:9")  # nothing listens on the discard port
    try:
        with pytest.raises(mlflow.exceptions.MlflowException):
            load_label_spec("0" * 32)
    finally:
        mlflow.set_tracking_uri(previous)
