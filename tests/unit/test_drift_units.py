"""Drift pieces without a model: Evidently verdicts, settings, the labelled inference log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.errors import ConfigurationError
from automl_tasks.estimators.features import FeatureSchema
from automl_tasks.monitoring import InferenceLog
from automl_tasks.monitoring.drift import measure_drift
from automl_tasks.monitoring.drift_settings import DriftSettings
from tests.drift_helpers import check_inference_log


def _table(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, n),
            "b": rng.normal(0, 1, n),
            "c": rng.normal(shift, 1, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.2, 0.3, 0.5] if shift else [0.5, 0.3, 0.2]),
            "_prediction": rng.integers(0, 2, n),
        }
    )


SCHEMA = FeatureSchema(numeric=("a", "b", "c"), categorical=("colour",))


def test_shifted_columns_are_found_and_unshifted_ones_are_not(tmp_path):
    result = measure_drift(
        _table(3000, 0),
        _table(2000, 1, shift=1.0),
        SCHEMA,
        drift_share=0.5,
        report_path=tmp_path / "r.html",
        prediction_kind="categorical",
    )
    assert sorted(result.drifted_columns) == ["a", "c", "colour"]
    assert result.share_drifted == pytest.approx(0.75) and result.data_drift
    assert result.prediction is not None and not result.prediction.drifted
    html = (tmp_path / "r.html").read_text()
    assert "<html" in html.lower() and len(html) > 10_000


def test_same_distribution_is_no_drift_and_large_tables_are_sampled(tmp_path):
    result = measure_drift(
        _table(5000, 0), _table(5000, 1), SCHEMA, drift_share=0.3, report_path=tmp_path / "r.html", max_rows=2000
    )
    assert result.drifted_columns == [] and not result.data_drift
    assert result.sampled and result.reference_rows == 2000 and result.current_rows == 2000
    assert result.prediction is None  # no prediction_kind given


def test_drift_settings_parse_types_and_refuse_bad_values():
    settings = DriftSettings.parse({"drift_share": "0.4", "enabled": "false", "min_rows": 50.0}, source="tags")
    assert settings.drift_share == 0.4 and settings.enabled is False and settings.min_rows == 50
    assert settings.merged({"drift_share": None, "max_rows": "500"}, source="form").drift_share == 0.4
    with pytest.raises(ConfigurationError, match="'min_rows' must be of type int; got '1.5'"):
        DriftSettings.parse({"min_rows": "1.5"}, source="form")
    with pytest.raises(ConfigurationError, match="unknown drift settings \\['shift'\\]"):
        DriftSettings.parse({"shift": 1}, source="form")
    with pytest.raises(ConfigurationError, match="drift_share"):
        DriftSettings(drift_share=1.5)


def test_feedback_labels_join_the_rows_they_belong_to(tmp_path):
    check_inference_log(InferenceLog(tmp_path / "f.sqlite", "f"))


def test_the_drift_windows_reader_creates_no_log_for_a_family_never_served(workspace):
    """A family nothing was logged for reads as an empty window and gets no SQLite file; a
    logged one reads its rows (the drift check's `read_logged_window`)."""
    from automl_tasks.monitoring.inference_log import open_inference_log, read_logged_window

    assert read_logged_window(workspace, "never_served", since=0).empty
    assert not list(workspace.home.rglob("never_served*"))
    check_inference_log(open_inference_log(workspace, "served"))
    assert read_logged_window(workspace, "served", since=0)["x"].tolist() == [0, 1, 2, 9]
