"""Logits of a text classifier, in torch or from its ONNX export, for tokenised texts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from automl_tasks.adaptation.texts import batches
from automl_tasks.deploy.text_model import onnx_feed, padded, softmax

__all__ = ["export_classifier", "onnx_feed", "softmax", "torch_logits"]

ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_OPSET = 17


def torch_logits(model, ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 64) -> np.ndarray:
    """float32 logits of each tokenised text, in the order of `ids` (batches grouped by length)."""
    import torch

    out: np.ndarray | None = None
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for rows in batches(ids, batch_size):
            input_ids, mask = padded([ids[i] for i in rows], pad_id)
            logits = model(torch.from_numpy(input_ids), torch.from_numpy(mask)).numpy()
            if out is None:
                out = np.empty((len(ids), logits.shape[1]), dtype=np.float32)
            out[rows] = logits
    model.train(was_training)
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


def export_classifier(model, path: Path) -> Path:
    """Write a plain (deployable) TextClassifier as ONNX: int64 input_ids and attention_mask of
    any batch and length in, float logits out."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    model.eval()
    torch.onnx.export(
        model,
        example,
        str(path),
        input_names=list(ONNX_INPUTS),
        output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}},
        opset_version=ONNX_OPSET,
        dynamo=False,
    )
    return path
