"""An adapted model on disk: the method's own weights, the head and a reference to the base.

    meta.json            method, configuration, classes, max_length, base model folder and digest
    head.safetensors     the classification head
    adapter/             PEFT's own format (adapter_config.json, adapter_model.safetensors),
                         for lora, prompt and adapter
    encoder.safetensors  full fine-tuning only: the whole encoder

So a LoRA version stores kilobytes to a few megabytes, not the 90 MB base model, and any
PEFT user can load `adapter/` onto the same base.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from automl_tasks.adaptation.classifier import TextClassifier
from automl_tasks.adaptation.methods import build_classifier
from automl_tasks.core.base_model import load_encoder

META_FILE = "meta.json"


@dataclass(frozen=True)
class AdaptedMeta:
    """What rebuilds an adapted model besides its weights."""

    method: str
    config: dict[str, Any]
    classes: list[Any]
    max_length: int
    base_model: str  # the base model's folder
    base_digest: str  # its content hash (base_model.base_model_digest)


def save_adapted(model: TextClassifier, meta: AdaptedMeta, folder: Path) -> Path:
    """Write the method's weights and the head under `folder`; return the folder."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / META_FILE).write_text(json.dumps(asdict(meta), indent=2, default=str))
    save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(folder / "head.safetensors"))
    if meta.method == "full":
        state = {k: v.contiguous() for k, v in model.encoder.state_dict().items()}
        save_file(state, str(folder / "encoder.safetensors"))
    elif meta.method != "head":
        model.encoder.save_pretrained(str(folder / "adapter"))
    return folder


def read_meta(folder: Path) -> AdaptedMeta:
    return AdaptedMeta(**json.loads((folder / META_FILE).read_text()))


def load_adapted(folder: Path) -> tuple[TextClassifier, AdaptedMeta]:
    """The trained model (PEFT-wrapped where it was) and its meta, from `save_adapted`'s folder."""
    from safetensors.torch import load_file

    meta = read_meta(folder)
    encoder = load_encoder(Path(meta.base_model))
    if meta.method == "full":
        encoder.load_state_dict(load_file(str(folder / "encoder.safetensors")))
    hidden = int(encoder.config.hidden_size)
    if meta.method in ("head", "full"):
        model = build_classifier(encoder, meta.method, meta.config, len(meta.classes))
    else:
        from peft import PeftModel

        model = TextClassifier(PeftModel.from_pretrained(encoder, str(folder / "adapter")), hidden, len(meta.classes))
    model.head.load_state_dict(load_file(str(folder / "head.safetensors")))
    return model.eval(), meta


def save_student(model: TextClassifier, meta: AdaptedMeta, folder: Path, tokenizer) -> Path:
    """A miniaturised model is a whole (small) model: its encoder in Hugging Face's format,
    the head, the meta and the tokenizer."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / META_FILE).write_text(json.dumps(asdict(meta), indent=2, default=str))
    model.encoder.save_pretrained(str(folder / "encoder"))
    save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(folder / "head.safetensors"))
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    return folder


def load_student(folder: Path) -> tuple[TextClassifier, AdaptedMeta]:
    """A model written by `save_student`."""
    from safetensors.torch import load_file

    meta = read_meta(folder)
    encoder = load_encoder(folder / "encoder")
    model = TextClassifier(encoder, int(encoder.config.hidden_size), len(meta.classes))
    model.head.load_state_dict(load_file(str(folder / "head.safetensors")))
    return model.eval(), meta
