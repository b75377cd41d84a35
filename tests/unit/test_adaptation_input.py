"""Bad input to the adaptation pipeline: refused at data_preprocess (or at the form), naming
the file, the column and the rule, and a refused table writes nothing."""

from __future__ import annotations

import pytest

from automl_tasks.core.errors import ConfigurationError, DataValidationError
from automl_tasks.pipelines.adaptation import prepare_adaptation
from automl_tasks.pipelines.requests import AdaptationRequest
from tests.store_snapshot import assert_nothing_written, store_snapshot
from tests.text_models import tiny_bert, toy_reviews

GOOD = toy_reviews(40)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert") / "tiny")


def _with(**columns):
    frame = GOOD.copy()
    for name, values in columns.items():
        frame[name] = values
    return frame


REFUSED = {
    # table, text column, what the error must name
    "empty_text": (_with(text=[""] + list(GOOD.text[1:])), "text", ["'text'", "rule text_not_null", "empty cell"]),
    "blank_text": (_with(text=["   "] + list(GOOD.text[1:])), "text", ["'text'", "rule text_not_blank"]),
    "missing_text": (_with(text=[None] + list(GOOD.text[1:])), "text", ["'text'", "rule text_not_null"]),
    "single_class": (_with(label=["positive"] * len(GOOD)), "text", ["'label'", "rule at_least_two_classes"]),
    "numeric_text_column": (_with(score=range(len(GOOD))), "score", ["'score'", "rule text_is_string"]),
    "no_such_text_column": (GOOD, "review", ["'review'", "rule text_column_exists", "columns are"]),
    "tiny_class": (_with(label=["negative"] * 3 + ["positive"] * (len(GOOD) - 3)), "text", ["min_rows_per_class"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_text_table_is_named_and_writes_nothing(workspace, tmp_path, base, case):
    frame, text_column, expected = REFUSED[case]
    path = tmp_path / f"{case}.csv"
    frame.to_csv(path, index=False)
    request = AdaptationRequest(dataset=str(path), text_column=text_column, target="label", base_model=str(base))
    before = store_snapshot(workspace)
    with pytest.raises(DataValidationError) as caught:
        prepare_adaptation(workspace, request, dag_run_id=f"bad-{case}")
    message = str(caught.value)
    assert str(path) in message
    for words in expected:
        assert words in message, message
    assert_nothing_written(before, store_snapshot(workspace))


def test_a_good_text_table_is_stored_with_its_length_profile(workspace, tmp_path, base):
    """The check above can fail: the same call on a good table writes a version and a run."""
    from automl_tasks.core.tracking import mlflow_client

    path = tmp_path / "good.csv"
    GOOD.to_csv(path, index=False)
    before = store_snapshot(workspace)
    pre = prepare_adaptation(
        workspace,
        AdaptationRequest(dataset=str(path), text_column="text", target="label", base_model=str(base)),
        dag_run_id="good",
    )
    after = store_snapshot(workspace)
    assert after["runs"] != before["runs"] and len(after["files"]) > len(before["files"])
    assert pre.task_type == "binary" and pre.metric == "accuracy" and pre.rows == len(GOOD)
    profile = mlflow_client(workspace).download_artifacts(pre.parent_run_id, "data/text_profile.json")
    import json

    lengths = json.loads(open(profile).read())
    assert lengths["tokens"]["max"] >= lengths["tokens"]["p50"] > 2 and set(lengths["classes"]) == {
        "positive",
        "negative",
    }


@pytest.mark.parametrize(
    ("conf", "words"),
    [
        ({"base_model": "/no/such/model"}, ["'base_model'", "/no/such/model", "no such folder"]),
        ({"methods": "lora,bottleneck"}, ["'methods'", "'lora,bottleneck'"]),
        ({"miniaturise": "distill,shrink"}, ["'miniaturise'"]),
        ({"dataset": "/no/such.csv"}, ["'dataset'"]),
        ({"time_budget_s": 5}, ["'time_budget_s'"]),
        ({"n_trials": 0}, ["'n_trials'", "in [1, 10000]"]),
    ],
)
def test_a_bad_form_is_refused_naming_the_field(conf, words):
    with pytest.raises(ConfigurationError) as caught:
        AdaptationRequest.from_conf(conf)
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_a_folder_without_weights_is_not_a_base_model(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigurationError) as caught:
        AdaptationRequest(base_model=str(tmp_path))
    assert "is not a Hugging Face model folder" in str(caught.value) and "model.safetensors" in str(caught.value)
