"""What a text version needs to answer requests besides its ONNX file: the tokenizer, the
classes the logits stand for, the token limit and the family's label spec.

Logged as `serving/` in every text version's run, so the BentoML service and batch
inference load any version (adapted, distilled, pruned or int8) the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SERVING_ARTIFACT = "serving"
SERVING_FILE = "serving.json"


@dataclass(frozen=True)
class ServingSpec:
    """The classes (canonical labels, in logit order), the token limit, and the label spec's JSON."""

    classes: list[Any]
    max_length: int
    label_spec: str  # LabelSpec.to_json(), "" when the run has none

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def write_bundle(folder: Path, tokenizer, spec: ServingSpec) -> Path:
    """The `serving/` folder: the tokenizer files and serving.json."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    (folder / SERVING_FILE).write_text(spec.to_json())
    return folder


def read_bundle(folder: Path) -> tuple[Any, ServingSpec]:
    """(tokenizer, spec) from a `serving/` folder."""
    from automl_tasks.adaptation.base_model import load_tokenizer

    spec = ServingSpec(**json.loads((folder / SERVING_FILE).read_text()))
    return load_tokenizer(folder / "tokenizer"), spec
