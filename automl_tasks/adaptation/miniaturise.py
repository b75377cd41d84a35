"""Miniaturisation of an adapted teacher: knowledge distillation into fewer layers, structured
pruning of the feed-forward neurons, and (in `quantise`) dynamic int8 quantisation.

Both torch steps end with the same training: the student learns from the teacher's soft
labels (temperature-scaled KL, Hinton et al.) and from the hard labels. They differ in what
is removed: distillation keeps every other transformer layer (initialised from the
teacher's, as DistilBERT does); pruning keeps every layer but only the feed-forward
neurons with the largest weight magnitude (the FFN holds two thirds of a BERT layer's
weights and FLOPs), a structured cut that any engine runs faster without sparse kernels.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from automl_tasks.adaptation.classifier import PromptedEncoder, TextClassifier
from automl_tasks.adaptation.inference import softmax, torch_logits
from automl_tasks.adaptation.texts import batches, padded
from automl_tasks.core.errors import ConfigurationError

STEPS = ("distill", "prune", "quantise")
TEMPERATURE = 2.0
SOFT_WEIGHT = 0.5  # share of the loss that follows the teacher; the rest, the labels


@dataclass(frozen=True)
class StudentTraining:
    """How a student is trained: epochs, batch size, learning rate, seed."""

    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 1e-4
    seed: int = 0


def without_prompt(teacher: TextClassifier) -> TextClassifier:
    """The teacher's plain encoder and head (a prompt-tuned teacher's prompt dropped): students
    are whole models trained from the teacher's outputs, so they need no prompt of their own."""
    if not isinstance(teacher.encoder, PromptedEncoder):
        return teacher
    plain = TextClassifier(teacher.encoder.encoder, teacher.head.in_features, teacher.head.out_features)
    plain.head.load_state_dict(teacher.head.state_dict())
    return plain.eval()


def layer_stack(encoder: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The module holding the encoder's transformer layers, and the attribute name of the list."""
    n_layers = int(getattr(encoder.config, "num_hidden_layers", 0))
    for module in encoder.modules():
        for name, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == n_layers and n_layers > 1:
                return module, name
    raise ConfigurationError(
        f"{type(encoder).__name__}: no list of {n_layers} transformer layers found; distillation needs a "
        "layered encoder (BERT, RoBERTa, MiniLM, ...)"
    )


def kept_layers(n_layers: int, keep: int) -> list[int]:
    """`keep` layers spread evenly over the stack, always including the last one."""
    keep = max(1, min(keep, n_layers))
    return sorted({round(i * (n_layers - 1) / max(keep - 1, 1)) for i in range(keep)} | {n_layers - 1})[-keep:]


def fewer_layers(teacher: TextClassifier, keep: int) -> TextClassifier:
    """A copy of the (plain) teacher with only `keep` of its layers; embeddings and head copied."""
    student = copy.deepcopy(teacher)
    holder, name = layer_stack(student.encoder)
    layers = getattr(holder, name)
    chosen = kept_layers(len(layers), keep)
    setattr(holder, name, torch.nn.ModuleList([layers[i] for i in chosen]))
    student.encoder.config.num_hidden_layers = len(chosen)
    return student


def _ffn_pairs(encoder: torch.nn.Module) -> list[tuple[torch.nn.Module, str, torch.nn.Module, str]]:
    """(holder, attribute) of each layer's FFN input and output Linear (BERT: intermediate.dense, output.dense)."""
    holder, name = layer_stack(encoder)
    pairs = []
    for layer in getattr(holder, name):
        intermediate, output = getattr(layer, "intermediate", None), getattr(layer, "output", None)
        if intermediate is None or output is None or not hasattr(intermediate, "dense") or not hasattr(output, "dense"):
            raise ConfigurationError(
                f"{type(layer).__name__}: pruning needs BERT-style layers (intermediate.dense, output.dense)"
            )
        pairs.append((intermediate, "dense", output, "dense"))
    return pairs


def pruned_ffn(teacher: TextClassifier, keep_share: float) -> TextClassifier:
    """A copy of the teacher whose feed-forward layers keep `keep_share` of their neurons:
    those whose input and output weights have the largest L2 norm product."""
    from transformers.pytorch_utils import prune_linear_layer

    student = copy.deepcopy(teacher)
    width = None
    for first, first_name, second, second_name in _ffn_pairs(student.encoder):
        w_in, w_out = getattr(first, first_name), getattr(second, second_name)
        importance = w_in.weight.norm(dim=1) * w_out.weight.norm(dim=0)
        keep = max(1, int(round(keep_share * importance.numel())))
        index = importance.topk(keep).indices.sort().values
        setattr(first, first_name, prune_linear_layer(w_in, index, dim=0))
        setattr(second, second_name, prune_linear_layer(w_out, index, dim=1))
        width = keep
    student.encoder.config.intermediate_size = width
    return student


def distil(
    student: TextClassifier,
    ids: Sequence[Sequence[int]],
    labels: np.ndarray,
    teacher_logits: np.ndarray,
    rows: np.ndarray,
    pad_id: int,
    training: StudentTraining,
) -> float:
    """Train every weight of `student` on `rows` towards the teacher's logits and the labels;
    return the seconds taken. `labels` and `teacher_logits` are aligned with `ids` (every row)."""
    torch.manual_seed(training.seed)
    student.train()
    student.requires_grad_(True)
    optimiser = torch.optim.AdamW(student.parameters(), lr=training.learning_rate)
    generator = np.random.default_rng(training.seed)
    soft_targets = torch.from_numpy(softmax(teacher_logits / TEMPERATURE)).float()
    started = time.perf_counter()
    for _ in range(training.epochs):
        for batch in batches(ids, training.batch_size, order=generator.permutation(rows)):
            input_ids, mask = padded([ids[i] for i in batch], pad_id)
            logits = student(torch.from_numpy(input_ids), torch.from_numpy(mask))
            soft = torch.nn.functional.kl_div(
                torch.log_softmax(logits / TEMPERATURE, dim=1), soft_targets[batch], reduction="batchmean"
            )
            hard = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels[batch]).long())
            loss = SOFT_WEIGHT * TEMPERATURE**2 * soft + (1 - SOFT_WEIGHT) * hard
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    student.eval()
    return time.perf_counter() - started


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of rows where two models' logits give the same label."""
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def logits(model: TextClassifier, ids: Sequence[Sequence[int]], rows: np.ndarray, pad_id: int) -> np.ndarray:
    return torch_logits(model, [ids[i] for i in rows], pad_id)
