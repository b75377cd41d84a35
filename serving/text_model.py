"""A text family's version as the service uses it: {"text": ...} instances in, labels out.

Tokenisation happens in the service, on the request's event-loop turn (a fast tokenizer
takes ~0.1 ms a text). A lone text runs at once on the event loop (a thread hop cost ~0.5 ms
of p99 at concurrency 1, docs/BENCHMARKS.md); a batch of several runs in a thread, so the
requests arriving meanwhile are parsed and form the next batch.
A text longer than the version's token limit is cut to it and the answer says so; an
empty text, a non-string text or one over `MAX_TEXT_CHARS` characters is refused (400).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from automl_tasks.core.settings import Workspace
from automl_tasks.deploy.text_model import TextOnnxModel
from automl_tasks.families.loading import load_text_version
from serving.loader import MAX_INSTANCES, BadRequest, answer_payload

#: longer texts are refused: a client sending them has a bug, and they cost tokenizer time
MAX_TEXT_CHARS = 100_000


@dataclass
class TextBatch:
    """Token ids of validated texts, and which instances were cut to the token limit."""

    ids: list[list[int]]
    truncated: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def concat(parts: list[TextBatch]) -> TextBatch:
        return parts[0] if len(parts) == 1 else TextBatch([row for part in parts for row in part.ids])


class TextRequestModel:
    """Validation of {"instances": [{"text": "..."}]} bodies and their tokenisation."""

    def __init__(self, model: TextOnnxModel) -> None:
        self.model = model
        row = TypedDict("TextInstance", {"text": Annotated[str, Field(strict=True)]})  # noqa: UP013
        row.__pydantic_config__ = ConfigDict(extra="forbid", strict=True)
        body = TypedDict(  # noqa: UP013 (functional form, as in serving.request_model)
            "TextPredictRequest", {"instances": Annotated[list[row], Field(min_length=1, max_length=MAX_INSTANCES)]}
        )
        self.adapter = TypeAdapter(body)

    def json_schema(self) -> dict[str, Any]:
        return self.adapter.json_schema()

    def parse(self, body: bytes) -> tuple[list[dict[str, Any]], TextBatch]:
        """(rows, tokenised batch) of a valid body; BadRequest naming the fault otherwise."""
        try:
            rows = self.adapter.validate_json(body)["instances"]
        except ValidationError as exc:
            raise BadRequest(_message(body, exc)) from None
        for i, row in enumerate(rows):
            if not row["text"].strip():
                raise BadRequest(f"instances[{i}].text is empty; send the text to classify")
            if len(row["text"]) > MAX_TEXT_CHARS:
                raise BadRequest(
                    f"instances[{i}].text has {len(row['text'])} characters; at most {MAX_TEXT_CHARS} are accepted"
                )
        ids, truncated = self.model.tokenise([row["text"] for row in rows])
        return rows, TextBatch(ids, truncated)


def _message(body: bytes, exc: ValidationError) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        return f"request body is not valid JSON: {err}"
    instances = data.get("instances") if isinstance(data, dict) else None
    if not isinstance(instances, list) or not instances:
        return '\'instances\' must be a non-empty list of objects like {"text": "..."}'
    if len(instances) > MAX_INSTANCES:
        return f"at most {MAX_INSTANCES} instances per request; got {len(instances)}"
    for i, row in enumerate(instances):
        if not isinstance(row, dict) or set(row) != {"text"}:
            shown = sorted(row) if isinstance(row, dict) else type(row).__name__
            return f"instances[{i}] must be an object with exactly one key, 'text'; got {shown}"
        if not isinstance(row["text"], str):
            return f"instances[{i}].text must be a string; got {row['text']!r}"
    first = exc.errors(include_url=False)[0]
    return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"


@dataclass
class TextServedModel:
    """One registered text version on its engine, ready to predict on texts."""

    ws: Workspace
    family: str
    version: str
    alias: str
    runtime: str
    model: TextOnnxModel
    schema: Any = None  # tabular columns: none
    inline_rows: int = 1  # a lone text runs at once; a batch in a thread, so the next one forms meanwhile

    def request_model(self) -> TextRequestModel:
        return TextRequestModel(self.model)

    def run(self, batch: TextBatch) -> tuple[np.ndarray, np.ndarray]:
        """Labels (in the user's type) and probabilities of a batch, padded to its longest text."""
        proba = self.model.proba_of_ids(batch.ids)
        return self.model.decode(self.model.classes_[proba.argmax(axis=1)]), proba

    def notes(self, batch: TextBatch) -> list[str]:
        return [f"instances[{i}].text was cut to {self.model.spec.max_length} tokens" for i in batch.truncated]

    def answer(self, labels: Any, proba: Any) -> dict[str, Any]:
        return answer_payload(self.family, self.version, self.alias, self.runtime, labels, proba)

    def to_frame(self, instances: Any) -> Any:
        raise BadRequest(f"family {self.family!r} classifies texts; /explain explains tabular models only")

    def explainer(self) -> Any:
        raise BadRequest(f"family {self.family!r} classifies texts; /explain explains tabular models only")


def load_text_model(ws: Workspace, family: str, alias: str, version: Any) -> TextServedModel:
    """The text version behind `family@alias` (its ONNX file, tokenizer and classes, from its run)."""
    model = load_text_version(ws, version)
    return TextServedModel(ws, family, str(version.version), alias, model.engine, model)
