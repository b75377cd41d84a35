"""Malformed tables at data_preprocess: read what a careful tool would read, refuse the
rest naming the file, the column and the rule, and a refused table writes nothing."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.errors import DataValidationError
from automl_tasks.data import profile_table, read_table
from automl_tasks.pipelines.advisor import suggest
from automl_tasks.pipelines.intake import preprocess
from automl_tasks.pipelines.requests import NoCodeRequest
from tests.store_snapshot import assert_nothing_written, store_snapshot

GOOD = "x1,x2,cat,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]},{i % 2}\n" for i in range(40))

REFUSED = {
    # file content, what the error must name
    "inf_value": (GOOD.replace("\n3,", "\ninf,", 1).replace("\n5,", "\n-inf,", 1), ["'x1'", "rule finite_values"]),
    "duplicate_names": (GOOD.replace("x1,x2,cat", "x1,x2,x1", 1), ["'x1'", "positions 1 and 3"]),
    "missing_target": (GOOD.replace(",label", ",y", 1), ["'label'", "rule target_exists"]),
    "single_class": ("x1,label\n" + "".join(f"{i},1\n" for i in range(10)), ["'label'", "at_least_two_classes"]),
    "empty_file": ("", ["rule table_not_empty"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_table_is_named_and_writes_nothing(workspace, tmp_path, case):
    content, expected = REFUSED[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(content)
    before = store_snapshot(workspace)
    with pytest.raises(DataValidationError) as caught:
        preprocess(workspace, NoCodeRequest(dataset=str(path), target="label"), dag_run_id=f"bad-{case}")
    message = str(caught.value)
    assert str(path) in message
    for words in expected:
        assert words in message, message
    assert_nothing_written(before, store_snapshot(workspace))


def test_the_snapshot_sees_what_an_accepted_table_writes(workspace, tmp_path):
    """The check above can fail: the same call on a good table changes every store it watches."""
    path = tmp_path / "good.csv"
    path.write_text(GOOD)
    before = store_snapshot(workspace)
    preprocess(workspace, NoCodeRequest(dataset=str(path), target="label"), dag_run_id="good")
    after = store_snapshot(workspace)
    with pytest.raises(AssertionError, match="a refused input changed the stores"):
        assert_nothing_written(before, after)
    assert after["runs"] != before["runs"] and after["experiments"] != before["experiments"]
    new_files = set(after["files"]) - set(before["files"])
    assert any(f.startswith("dvc-remote/") for f in new_files), new_files
    assert any(f.startswith("runs/profiles/") for f in new_files), new_files


def test_semicolon_separated_file_is_read_and_the_delimiter_logged(tmp_path, caplog):
    path = tmp_path / "semi.csv"
    path.write_text(GOOD.replace(",", ";"))
    with caplog.at_level(logging.INFO, logger="automl_tasks.data.ingest"):
        frame = read_table(path)
    assert list(frame.columns) == ["x1", "x2", "cat", "label"] and len(frame) == 40
    assert frame["x1"].dtype.kind == "i"
    assert "delimiter ';'" in caplog.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_a_file_with_a_byte_order_mark_is_read(tmp_path, encoding, caplog):
    path = tmp_path / "bom.csv"
    text = GOOD.replace(",a,", ",é,")  # a non-ASCII category survives the round trip
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # Python's utf-16-be codec writes no mark
    path.write_bytes(data)
    with caplog.at_level(logging.INFO, logger="automl_tasks.data.ingest"):
        frame = read_table(path)
    assert list(frame.columns) == ["x1", "x2", "cat", "label"] and len(frame) == 40
    assert set(frame["cat"]) == {"é", "b"}
    assert "read as utf" in caplog.text


def test_a_plain_comma_file_is_read_as_before(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text(GOOD)
    pd.testing.assert_frame_equal(read_table(path), pd.read_csv(path))


def test_a_column_that_alone_predicts_the_target_gets_an_advisor_warning():
    rng = np.random.default_rng(0)
    n = 300
    label = np.sort(rng.integers(0, 2, n))  # a table sorted by label ...
    frame = pd.DataFrame(
        {
            "row_index": np.arange(n),  # ... whose row number gives the label away
            "noise": rng.normal(size=n),
            "weak": label + rng.normal(scale=2.0, size=n),
            "label": label,
        }
    ).sample(frac=1, random_state=1)
    profile = profile_table(frame, "label", "binary")
    assert [found["column"] for found in profile["single_column_predictors"]] == ["row_index"]
    warnings = [s for s in suggest(None, {}, {}, profile, {}) if s["param"] == "row_index"]
    assert len(warnings) == 1 and "alone predicts label" in warnings[0]["text"]
    assert not [s for s in suggest(None, {}, {}, profile, {}) if s["param"] in ("noise", "weak")]
