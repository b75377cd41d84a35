"""The adaptation algorithm as an Estimator: one configuration = a method and its settings.

Searched like any algorithm (epochs are the fidelity, so ASHA and Hyperband stop poor
trials after an epoch). Input: a table with the `text` column and the target. A trial
trains on the train split and scores on the validation split; the final trainer trains on
both, scores on the test split and saves only what the method trained (`artifacts`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from automl_tasks.adaptation.artifacts import AdaptedMeta, save_adapted
from automl_tasks.adaptation.inference import export_classifier, onnx_feed, softmax, torch_logits
from automl_tasks.adaptation.methods import build_classifier, deployable, method_param, trainable_share
from automl_tasks.adaptation.space import METHOD_PARAMS
from automl_tasks.adaptation.texts import TEXT_COLUMN, tokenise
from automl_tasks.core.base_model import (
    DEFAULT_BASE_MODEL,
    base_model_digest,
    load_encoder,
    load_tokenizer,
    resolve_base_model,
)
from automl_tasks.data.splits import make_splits
from automl_tasks.estimators.base import Estimator, EstimatorResult

#: each method's learning rate when a configuration does not set it: the space's default
DEFAULT_LEARNING_RATE = {
    method: next(p["default"] for p in params if p["name"] == "learning_rate")
    for method, params in METHOD_PARAMS.items()
}


class TextAdapterEstimator(Estimator):
    """A pretrained encoder adapted to a text classification task by one method."""

    @property
    def method(self) -> str:
        return str(self.model_args.get("method", "lora"))

    @property
    def max_length(self) -> int:
        return int(self.model_args.get("max_seq_len", 128))

    def load_data(self) -> None:
        """Read the table, tokenise its texts with the base model's tokenizer, fix the splits."""
        frame = pd.read_parquet(self.data.path, columns=[TEXT_COLUMN, self.data.target])
        self.base_ = resolve_base_model(str(self.model_args.get("base_model", DEFAULT_BASE_MODEL)))
        self.tokenizer_ = load_tokenizer(self.base_)
        self.pad_id_ = int(self.tokenizer_.pad_token_id or 0)
        self.classes_ = np.sort(frame[self.data.target].unique())
        self.target_ = np.searchsorted(self.classes_, frame[self.data.target].to_numpy())
        self.ids_ = tokenise(self.tokenizer_, frame[TEXT_COLUMN].astype(str).tolist(), self.max_length)
        self.splits_ = make_splits(frame[self.data.target], self.data.task_type, seed=self.data.split_seed)

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.splits_
        return (np.concatenate([s.train, s.valid]), s.test) if self.is_trainer else (s.train, s.valid)

    def train(self) -> None:
        import torch

        from automl_tasks.adaptation.texts import batches, padded

        self.load_data()
        torch.manual_seed(self.data.split_seed)
        self.model_ = build_classifier(load_encoder(self.base_), self.method, self.model_args, len(self.classes_))
        learning_rate = method_param(
            self.model_args, self.method, "learning_rate", DEFAULT_LEARNING_RATE.get(self.method, 1e-3)
        )
        trainable = [p for p in self.model_.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(trainable, lr=float(learning_rate))
        fit_rows, _ = self.rows()
        epochs = self.run_epochs or int(self.model_args.get("epochs", 3))
        batch_size = int(self.model_args.get("batch_size", 16))
        generator = np.random.default_rng(self.data.split_seed)
        started = time.perf_counter()
        # a frozen encoder gives every text the same embedding each epoch: embed once, then
        # train (and score, `_proba_of_rows`) the head alone: milliseconds an epoch instead
        # of a full forward pass
        self.features_ = features = self._frozen_features() if self.method == "head" else None
        for epoch in range(1, epochs + 1):
            self.model_.train()
            for rows in batches(self.ids_, batch_size, order=generator.permutation(fit_rows)):
                optimiser.zero_grad()
                if features is not None:
                    logits = self.model_.head(self.model_.dropout(features[rows]))
                else:
                    input_ids, mask = padded([self.ids_[i] for i in rows], self.pad_id_)
                    logits = self.model_(torch.from_numpy(input_ids), torch.from_numpy(mask))
                loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(self.target_[rows]).long())
                loss.backward()
                optimiser.step()
            if self.reporter is not None and not self.is_trainer:
                # lets Hyperband / ASHA stop poor trials
                self.report(self.calculate_score().score, epoch, last=epoch == epochs)
        self.train_seconds_ = time.perf_counter() - started
        self.plain_ = None

    def _frozen_features(self):  # -> torch.Tensor, one pooled embedding per row of the table
        import torch

        head, self.model_.head = self.model_.head, torch.nn.Identity()
        try:
            return torch.from_numpy(torch_logits(self.model_, self.ids_, self.pad_id_))
        finally:
            self.model_.head = head

    def probabilities(self, ids: list[list[int]]) -> np.ndarray:
        model = self.plain_ if getattr(self, "plain_", None) is not None else self.model_
        return softmax(torch_logits(model, ids, self.pad_id_))

    def _proba_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities of table rows: from the cached embeddings while a frozen encoder trains."""
        import torch

        if getattr(self, "features_", None) is not None and getattr(self, "plain_", None) is None:
            with torch.no_grad():
                return softmax(self.model_.head(self.features_[rows]).numpy())
        return self.probabilities([self.ids_[i] for i in rows])

    def calculate_score(self) -> EstimatorResult:
        _, rows = self.rows()
        proba = self._proba_of_rows(rows)
        truth = self.target_[rows]
        labels = proba.argmax(axis=1)
        prediction = proba if self.metric.needs_proba else labels
        score = float(self.metric(truth, prediction, classes=np.arange(len(self.classes_))))
        count, share = trainable_share(self.model_)
        metrics = {
            self.metric.name: score,
            "accuracy": float(np.mean(labels == truth)),
            "trainable_parameters": float(count),
            "trainable_share": share,
        }
        if hasattr(self, "train_seconds_"):
            metrics["train_seconds"] = self.train_seconds_
        return EstimatorResult(score=score, metrics=metrics)

    def plain(self):  # -> TextClassifier
        """The trained model as plain torch (adapters merged); built once."""
        if getattr(self, "plain_", None) is None:
            self.plain_ = deployable(self.model_, self.method)
        return self.plain_

    def _texts(self, frame: pd.DataFrame) -> list[list[int]]:
        return tokenise(self.tokenizer_, frame[TEXT_COLUMN].astype(str).tolist(), self.max_length)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(frame).argmax(axis=1)]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return softmax(torch_logits(self.plain(), self._texts(frame), self.pad_id_))

    def meta(self) -> AdaptedMeta:
        return AdaptedMeta(
            method=self.method,
            config=dict(self.model_args),
            classes=self.classes_.tolist(),
            max_length=self.max_length,
            base_model=str(self.base_),
            base_digest=base_model_digest(self.base_),
        )

    def save(self, path: Path) -> str:
        """Only what the method trained (see `artifacts`), plus the tokenizer for serving."""
        save_adapted(self.model_, self.meta(), path)
        self.tokenizer_.save_pretrained(str(path / "tokenizer"))
        return str(path)

    def export_onnx(self, path: Path) -> Path:
        return export_classifier(self.plain(), path)

    def onnx_feed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return onnx_feed(self._texts(frame), self.pad_id_)

    def onnx_labels(self, outputs: list[np.ndarray]) -> np.ndarray:
        return self.classes_[outputs[0].argmax(axis=1)]
