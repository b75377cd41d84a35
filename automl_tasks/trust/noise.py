"""Noise robustness: the model's metric on held-out rows as random noise grows.

Tables: Gaussian noise on every numeric column a person gives, sigma a fraction of the
column's standard deviation (measured on the training rows), and, on its own curve,
categories replaced with a given probability by a draw from the column's training values
(which may be the same category: the flip rate is an upper bound of the changed share).
Columns a feature pipeline computes from others (frequencies, interactions) are made again
from the noisy ones (`TrustSubject.recompute`), as serving would.
Images: Gaussian pixel noise, clipped to the pixel range. Texts: a share of the tokens
(never the first and last, the tokenizer's markers) replaced by the unknown token. A table's
noisy rows are scored through the runtime a black-box attack queries (the model's ONNX export
when it is the same function, `TrustSubject.proba_for_queries`). Each
curve is summarised by its normalised area: the mean metric over the levels' range
(trapezoid rule), in the metric's own units, so 'area equal to the clean score' means no
loss at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from automl_tasks.trust.subject import IMAGE, TEXT, Rows, TrustSubject

#: sigma of the Gaussian noise, as a fraction of each numeric column's std (or of the pixel range)
NOISE_LEVELS = (0.0, 0.1, 0.25, 0.5, 1.0)
#: probability that a category is replaced by another one
FLIP_LEVELS = (0.0, 0.05, 0.1, 0.25, 0.5)
#: share of a text's tokens replaced by the unknown token
TOKEN_LEVELS = (0.0, 0.05, 0.1, 0.25, 0.5)
#: held-out rows scored at most per level (texts: a transformer's forward pass each)
MAX_ROWS = 2000
MAX_TEXT_ROWS = 300


@dataclass(frozen=True)
class Curve:
    """The metric at each level of one kind of noise, and the curve's normalised area."""

    name: str  # gaussian | category_flip
    levels: tuple[float, ...]
    scores: tuple[float, ...]

    @property
    def area(self) -> float:
        levels, scores = np.asarray(self.levels), np.asarray(self.scores)
        span = levels[-1] - levels[0]
        return float(np.trapezoid(scores, levels) / span) if span > 0 else float(scores[0])


def _sample(rows: Rows, rng: np.random.Generator, most: int = MAX_ROWS) -> Rows:
    if len(rows) <= most:
        return rows
    return rows.take(np.sort(rng.choice(len(rows), most, replace=False)))


def _token_noise(x: np.ndarray, level: float, unknown: int, rng: np.random.Generator) -> np.ndarray:
    noisy = np.empty(len(x), dtype=object)
    for i, ids in enumerate(x):
        ids = list(ids)
        inner = np.arange(1, max(1, len(ids) - 1))
        for j in inner[rng.random(len(inner)) < level]:
            ids[j] = unknown
        noisy[i] = ids
    return noisy


def _gaussian_table(x: pd.DataFrame, columns: tuple[str, ...], std: pd.Series, level: float, rng) -> pd.DataFrame:
    noisy = x.copy()
    for column in columns:
        noisy[column] = x[column].to_numpy() + rng.normal(0.0, level * std[column], len(x))
    return noisy


def _flip_table(x: pd.DataFrame, columns: tuple[str, ...], pools: dict[str, np.ndarray], level: float, rng):
    noisy = x.copy()
    for column in columns:
        values = x[column].to_numpy(dtype=object).copy()
        flip = rng.random(len(values)) < level
        values[flip] = rng.choice(pools[column], int(flip.sum()))
        noisy[column] = values
    return noisy


def noise_curves(subject: TrustSubject, *, seed: int = 0) -> list[Curve]:
    """The Gaussian curve (and the category-flip curve when the table has categories)."""
    rng = np.random.default_rng(seed)
    if subject.kind == TEXT:
        rows = _sample(subject.held_out, rng, MAX_TEXT_ROWS)
        scores = [
            subject.score(Rows(_token_noise(rows.x, level, subject.unknown_token, rng), rows.y))
            for level in TOKEN_LEVELS
        ]
        return [Curve("token_replacement", TOKEN_LEVELS, tuple(scores))]
    rows = _sample(subject.held_out, rng)
    curves: list[Curve] = []
    if subject.kind == IMAGE:
        scores = [
            subject.score(Rows(np.clip(rows.x + rng.normal(0.0, level, rows.x.shape), 0, 1).astype("float32"), rows.y))
            for level in NOISE_LEVELS
        ]
        return [Curve("gaussian", NOISE_LEVELS, tuple(scores))]
    members = subject.members.x
    if subject.numeric:
        std = members[list(subject.numeric)].std().fillna(0.0)
        scores = [
            subject.score(
                Rows(subject.consistent(_gaussian_table(rows.x, subject.numeric, std, level, rng)), rows.y),
                for_queries=True,
            )
            for level in NOISE_LEVELS
        ]
        curves.append(Curve("gaussian", NOISE_LEVELS, tuple(scores)))
    if subject.categorical:
        pools = {c: members[c].to_numpy(dtype=object) for c in subject.categorical}
        scores = [
            subject.score(
                Rows(subject.consistent(_flip_table(rows.x, subject.categorical, pools, level, rng)), rows.y),
                for_queries=True,
            )
            for level in FLIP_LEVELS
        ]
        curves.append(Curve("category_flip", FLIP_LEVELS, tuple(scores)))
    return curves
