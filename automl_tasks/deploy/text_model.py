"""A text classifier's ONNX model with its tokenizer: texts in, labels and probabilities out.

What a text version needs besides its ONNX file travels as its run's `serving/` folder
(`write_bundle`): the tokenizer, the classes the logits stand for, the token limit and the
family's label spec. The BentoML service, batch inference and the drift check load every
text version (adapted, distilled, pruned or int8) through `TextOnnxModel`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.labels import LabelSpec
from automl_tasks.deploy.backends.base import BackendOptions
from automl_tasks.deploy.backends.ort import session
from automl_tasks.deploy.runtime import ONNX_RUNTIME

log = logging.getLogger(__name__)

SERVING_ARTIFACT = "serving"
SERVING_FILE = "serving.json"
#: the text column of a text family's tables and requests
TEXT_COLUMN = "text"


@dataclass(frozen=True)
class ServingSpec:
    """The classes (canonical labels, in logit order), the token limit, and the label spec's JSON."""

    classes: list[Any]
    max_length: int
    label_spec: str  # LabelSpec.to_json(), "" when the run has none

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def write_bundle(folder: Path, tokenizer: Any, spec: ServingSpec) -> Path:
    """The `serving/` folder: the tokenizer files and serving.json."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    (folder / SERVING_FILE).write_text(spec.to_json())
    return folder


def padded(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 (input_ids, attention_mask) padded to the longest sequence of `ids`."""
    width = max(len(row) for row in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


def onnx_feed(ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, np.ndarray]:
    input_ids, mask = padded(ids, pad_id)
    return {"input_ids": input_ids, "attention_mask": mask}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class TextOnnxModel:
    """A text classifier's ONNX model on a deployment engine, on tokenised texts.

    `run(feed) -> logits` is the engine's (ONNX Runtime's session, or another engine's
    `Runner`). `predict`/`predict_proba` take a frame with a `text` column (scikit-learn's
    interface, for the drift check and evaluation) and answer canonical labels; `classify`
    answers labels in the user's type (the label spec) for serving and batch inference."""

    #: rows per call when a frame is large (bounds the padded batch's memory)
    CHUNK = 256

    def __init__(
        self, run: Callable[[dict[str, np.ndarray]], np.ndarray], tokenizer: Any, spec: ServingSpec, engine: str
    ) -> None:
        self.run, self.tokenizer, self.spec, self.engine = run, tokenizer, spec, engine
        self.pad_id = int(tokenizer.pad_token_id or 0)
        self.classes_ = np.asarray(spec.classes)
        self.labels = LabelSpec.from_json(spec.label_spec) if spec.label_spec else None

    def tokenise(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Token ids cut to the token limit (the last, closing special token kept), and which were cut."""
        ids, truncated = [], []
        limit = self.spec.max_length
        for i, row in enumerate(self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]):
            if len(row) > limit:
                row = row[: limit - 1] + row[-1:]
                truncated.append(i)
            ids.append(row)
        return ids, truncated

    def proba_of_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Class probabilities of tokenised texts (one call, padded to the longest)."""
        return softmax(self.run(onnx_feed(ids, self.pad_id)))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        ids, _ = self.tokenise(frame[TEXT_COLUMN].astype(str).tolist())
        order = np.argsort([len(row) for row in ids], kind="stable")  # similar lengths pad little
        out = np.empty((len(ids), len(self.classes_)), dtype=np.float64)
        for start in range(0, len(order), self.CHUNK):
            rows = order[start : start + self.CHUNK]
            out[rows] = self.proba_of_ids([ids[i] for i in rows])
        return out

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(frame).argmax(axis=1)]

    def decode(self, canonical: np.ndarray) -> np.ndarray:
        return self.labels.decode(canonical) if self.labels is not None else canonical

    def classify(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(labels in the user's type, probabilities) of a frame's texts."""
        proba = self.predict_proba(frame)
        return self.decode(self.classes_[proba.argmax(axis=1)]), proba


def load_text_onnx(
    onnx_path: Path, bundle: Path, *, engine: str = ONNX_RUNTIME, options: BackendOptions | None = None
) -> TextOnnxModel:
    """A text version from its downloaded ONNX file and `serving/` folder, on `engine` (the
    engine the compile step chose for its target) or, when that engine cannot build it here,
    on ONNX Runtime, which the log says."""
    from transformers import AutoTokenizer

    spec = ServingSpec(**json.loads((bundle / SERVING_FILE).read_text()))
    tokenizer = AutoTokenizer.from_pretrained(str(bundle / "tokenizer"))
    if engine != ONNX_RUNTIME:
        try:
            return TextOnnxModel(_engine_runner(onnx_path, tokenizer, engine, options), tokenizer, spec, engine)
        except Exception as exc:
            log.warning(
                "%s cannot serve %s here (%s: %s); serving it with ONNX Runtime",
                engine,
                onnx_path,
                type(exc).__name__,
                exc,
            )
    runtime = session(str(onnx_path))
    return TextOnnxModel(lambda feed: runtime.run(None, feed)[0], tokenizer, spec, ONNX_RUNTIME)


def onnx_probabilities(onnx_path: Path, ids: Sequence[Sequence[int]], pad_id: int) -> np.ndarray:
    """Class probabilities of tokenised texts from an ONNX file, on ONNX Runtime, in one call."""
    return softmax(session(str(onnx_path)).run(None, onnx_feed(ids, pad_id))[0])


def _engine_runner(onnx_path: Path, tokenizer: Any, engine: str, options: BackendOptions | None):
    """`feed -> logits` of the ONNX model compiled by `engine` (its shapes stay dynamic)."""
    from automl_tasks.deploy.backends import get_backend

    example = onnx_feed(tokenizer(["an example text"])["input_ids"], int(tokenizer.pad_token_id or 0))
    runner = get_backend(engine).compile(onnx_path, example, options)
    return lambda feed: runner.run(feed)[0]
