"""Adversarial robustness, with the Adversarial Robustness Toolbox (ART).

- Differentiable models: white-box FGSM and PGD. The torch CNN: L-infinity on pixel values
  in [0, 1], at each `IMAGE_EPSILONS`. The tabular torch MLP: L2 on the network's scaled
  numeric inputs (the pipeline's imputation and scaling are done first, as the encoded
  categories, which stay fixed), at RMS budgets `TABLE_EPSILONS` in those inputs' units
  (z-scores when the configuration standardises). Beside PGD, noise of the same L2 norm per
  row, so the report shows what the attack costs beyond random noise.
- Text classifiers (adaptation): FGSM and PGD on the token embeddings (`text_white_box`).
- Every other classifier (trees, linear, ensembles): the black-box HopSkipJump attack
  (label queries only) on a sample of held-out rows, moving the numeric columns in units of
  their training standard deviation, categories held fixed (columns a feature pipeline
  computes from others follow their sources: `TrustSubject.recompute`). It queries the model's ONNX
  export when that is the same function on the attack's points (query_runtime.py: a call
  costs a fiftieth of a large ensemble's), and stops a row at `MAX_ROW_CALLS`.

Both give the accuracy under attack at a stated epsilon and the median perturbation that
flips a correct prediction. HopSkipJump finds *a* flipping perturbation, not the smallest,
so its median is an upper bound and its accuracy under attack an optimistic one. Its
gradient estimates draw from numpy's global generator, which the rows' attacks share
(coalesce.py), so two reports of one model can differ slightly.
Regressors have no prediction to flip: the report says so instead of a number.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.threads import run_in_threads
from automl_tasks.trust.coalesce import CoalescingPredictor
from automl_tasks.trust.subject import TABLE, TEXT, TrustSubject

log = logging.getLogger(__name__)

#: L-infinity budgets of the white-box attacks on images (pixel range [0, 1])
IMAGE_EPSILONS = (0.05, 0.1, 0.2, 0.3)
#: the image budget the headline accuracy-under-attack is stated at
IMAGE_EPSILON = 0.1
#: the table budget: RMS perturbation over the numeric columns, in training standard deviations
#: (a tabular MLP's white-box attack: in its scaled inputs' units, z-scores when it standardises)
TABLE_EPSILON = 0.25
#: the tables' white-box budgets (same units)
TABLE_EPSILONS = (0.1, 0.25, 0.5, 1.0)
#: per-token L2 budgets on a text model's token embeddings, as a share of their mean norm
TEXT_EPSILONS = (0.05, 0.1, 0.25, 0.5)
TEXT_EPSILON = 0.1
#: texts the white-box attack runs on (a forward and backward pass of the encoder per step)
WHITE_BOX_TEXT_ROWS = 64
TEXT_PGD_STEPS = 5
#: held-out rows the black-box attack is run on (each costs a few thousand label queries)
BLACK_BOX_ROWS = 20
#: images the white-box attacks are run on
WHITE_BOX_ROWS = 500
#: HopSkipJump's effort per row; ART's defaults (50 iterations, 10,000 queries) take minutes a row
HSJ_MAX_ITER, HSJ_MAX_EVAL, HSJ_INIT_EVAL = 8, 300, 30
#: half-width of the box the black-box attack moves in, in training standard deviations
BOX_STDS = 5.0
#: nearest differently-labelled training rows tried as the attack's starting point
INIT_CANDIDATES = 8
#: training rows (a seeded sample) those starting points are drawn from
ANCHOR_ROWS = 2000
#: model calls one row's black-box attack may make (it needs 115-170). ART's step-size
#: search halves its step until a point is adversarial, for ever when the point it found
#: adversarial is judged otherwise on a later call: a float32 model can answer a point on its
#: decision boundary differently in another batch (seen: a linear model's ONNX export hung
#: a NoCode run's task estimator)
MAX_ROW_CALLS = 400
#: that loop ends asking about one point again and again (its step under the point's float
#: resolution): a row that asks about the same lone point this many times in a row is stopped
STUCK_REPEATS = 3


class _RowStalled(Exception):
    """A row's attack reached MAX_ROW_CALLS or asked about one point STUCK_REPEATS times."""


@dataclass(frozen=True)
class AdversarialResult:
    attack: str  # HopSkipJump (black-box) | PGD (white-box)
    epsilon: float  # the budget `accuracy` is stated at
    clean_accuracy: float  # on the attacked rows
    accuracy: float  # under attack at `epsilon`
    median_perturbation: float  # to flip a correct prediction (inf: most did not flip)
    rows: int
    extra: dict[str, float] = field(default_factory=dict)  # per-attack, per-epsilon accuracies


def attack(subject: TrustSubject, *, seed: int = 0) -> AdversarialResult:
    """White-box on a differentiable image model, black-box on any other classifier."""
    if not subject.classifies:
        raise NotImplementedError(
            "adversarial robustness is measured for classifiers only (a regressor has no label to flip)"
        )
    if subject.kind == TEXT:
        if subject.network is None:
            raise NotImplementedError("this text model takes no token embeddings, so it has no white-box attack")
        return text_white_box(subject, seed=seed)
    if subject.network is not None:
        return white_box(subject, seed=seed)
    if not subject.numeric:
        raise NotImplementedError("the black-box attack moves numeric columns; this table has none")
    return black_box(subject, seed=seed)


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else float("inf")


class _Sweep:
    """A white-box attack's results over its budgets: accuracy under FGSM, PGD and noise of
    PGD's norm at each, and the smallest budget at which PGD flipped each correct row."""

    def __init__(self, clean: np.ndarray) -> None:
        self.clean = clean
        self.extra: dict[str, float] = {}
        self.flips_at = np.full(len(clean), np.inf)

    def record(self, eps: float, fgsm_right: np.ndarray, pgd_right: np.ndarray, noise_right: np.ndarray) -> None:
        self.extra[f"fgsm_accuracy_eps{eps:g}"] = float(np.mean(fgsm_right))
        self.extra[f"pgd_accuracy_eps{eps:g}"] = float(np.mean(pgd_right))
        self.extra[f"same_norm_noise_accuracy_eps{eps:g}"] = float(np.mean(noise_right))
        self.flips_at[self.clean & ~pgd_right & np.isinf(self.flips_at)] = eps

    def result(self, attack: str, epsilon: float) -> AdversarialResult:
        return AdversarialResult(
            attack=attack,
            epsilon=epsilon,
            clean_accuracy=float(np.mean(self.clean)),
            accuracy=self.extra[f"pgd_accuracy_eps{epsilon:g}"],
            median_perturbation=_median(self.flips_at[self.clean]),
            rows=len(self.clean),
            extra=self.extra,
        )


@dataclass(frozen=True)
class _WhiteBoxSpace:
    """Where a white-box attack moves: the norm, the budgets and the headline one (in the
    reported units), the value range, which input dimensions it may change, and the scale
    that turns a reported budget into the attack's norm (tables: RMS over the moved
    dimensions, so an L2 budget is eps times the root of their number)."""

    norm: float
    epsilons: tuple[float, ...]
    headline: float
    clip: tuple[float, float] | None
    mask: np.ndarray | None
    scale: float = 1.0
    name: str = "PGD (white-box, L-inf)"


def white_box(subject: TrustSubject, *, seed: int = 0) -> AdversarialResult:
    """FGSM and PGD through the subject's network: on the pixels of an image model, or on the
    scaled numeric inputs of a tabular MLP (L2, its categories' encodings held)."""
    rng = np.random.default_rng(seed)
    rows = subject.held_out
    if len(rows) > WHITE_BOX_ROWS:
        rows = rows.take(np.sort(rng.choice(len(rows), WHITE_BOX_ROWS, replace=False)))
    if subject.kind == TABLE:
        x = np.asarray(subject.encode(rows.x), dtype="float32")
        mask = np.zeros(x.shape[1:], dtype="float32")
        mask[subject.moved_inputs] = 1.0
        scale = float(np.sqrt(max(1, int(mask.sum()))))  # an L2 budget of RMS eps over the moved inputs
        name = "PGD (white-box, L2 on scaled numeric inputs)"
        space = _WhiteBoxSpace(2, TABLE_EPSILONS, TABLE_EPSILON, None, mask, scale, name)
    else:
        x = np.asarray(rows.x, dtype="float32")
        space = _WhiteBoxSpace(np.inf, IMAGE_EPSILONS, IMAGE_EPSILON, (0.0, 1.0), None)
    return _white_box(subject, x, np.asarray(rows.y), space, rng)


def _white_box(
    subject: TrustSubject, x: np.ndarray, y: np.ndarray, space: _WhiteBoxSpace, rng: np.random.Generator
) -> AdversarialResult:
    import torch
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    index = {label: i for i, label in enumerate(subject.classes)}  # the network's output columns
    y = np.array([index.get(label, -1) for label in y])
    classifier = PyTorchClassifier(
        subject.network.eval(),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=x.shape[1:],
        nb_classes=len(subject.classes),
        clip_values=space.clip,
        device_type="cpu",
    )

    def right(points: np.ndarray) -> np.ndarray:
        return classifier.predict(points).argmax(axis=1) == y

    sweep = _Sweep(right(x))
    for eps in space.epsilons:
        budget = eps * space.scale
        fgsm = FastGradientMethod(classifier, norm=space.norm, eps=budget).generate(x, mask=space.mask)
        pgd = ProjectedGradientDescent(
            classifier, norm=space.norm, eps=budget, eps_step=budget / 4, max_iter=10, verbose=False
        ).generate(x, mask=space.mask)
        # noise with each row's PGD perturbation's L2 norm, in a random direction it may move in
        delta = (pgd - x).reshape(len(x), -1)
        direction = rng.normal(size=delta.shape) * (1.0 if space.mask is None else space.mask.reshape(1, -1))
        direction *= (np.linalg.norm(delta, axis=1) / np.maximum(np.linalg.norm(direction, axis=1), 1e-12))[:, None]
        noisy = x + direction.reshape(x.shape).astype("float32")
        if space.clip is not None:
            noisy = np.clip(noisy, *space.clip)
        sweep.record(eps, right(fgsm), right(pgd), right(noisy))
    return sweep.result(space.name, space.headline)


def text_white_box(subject: TrustSubject, *, seed: int = 0) -> AdversarialResult:
    """FGSM and PGD on a text classifier's token embeddings (each real token's embedding moves
    by at most eps times the mean token-embedding norm; padding stays), beside noise of PGD's
    per-token norms. Written here rather than with ART: ART's estimators take one fixed input
    shape and no attention mask, and texts come in batches of their own lengths and masks.
    What it measures is the model's sensitivity in embedding space, an upper bound on what a
    word-substitution attacker (whose moves are restricted to other words) can do."""
    import torch

    from automl_tasks.deploy.text_model import padded

    rng = np.random.default_rng(seed)
    rows = subject.held_out
    if len(rows) > WHITE_BOX_TEXT_ROWS:
        rows = rows.take(np.sort(rng.choice(len(rows), WHITE_BOX_TEXT_ROWS, replace=False)))
    ids, mask = (torch.from_numpy(a) for a in padded(list(rows.x), subject.pad_token))
    y = torch.as_tensor(np.asarray(rows.y), dtype=torch.long)
    model = subject.network.eval()
    real = mask.unsqueeze(-1).to(torch.float32)  # 1 for real tokens, 0 for padding
    with torch.no_grad():
        embeddings = model.input_embeddings(ids)
        scale = float(embeddings.norm(dim=-1)[mask.bool()].mean())

    def logits(delta: torch.Tensor) -> torch.Tensor:
        return model.forward_embeddings(embeddings + delta * real, mask)

    def right(delta: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return (logits(delta).argmax(dim=1) == y).numpy()

    def per_token(direction: torch.Tensor, radius: float) -> torch.Tensor:
        return direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12) * radius

    def gradient(delta: torch.Tensor) -> torch.Tensor:
        delta = delta.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits(delta), y), delta)
        return grad

    zero = torch.zeros_like(embeddings)
    generator = torch.Generator().manual_seed(seed)
    sweep = _Sweep(right(zero))
    for eps in TEXT_EPSILONS:
        radius = eps * scale
        delta = zero.clone()
        for _ in range(TEXT_PGD_STEPS):  # steps of radius/2, each token projected back into its ball
            delta = delta + per_token(gradient(delta), radius / 2)
            norms = delta.norm(dim=-1, keepdim=True)
            delta = delta * torch.clamp(radius / norms.clamp_min(1e-12), max=1.0)
        noise = per_token(torch.randn(embeddings.shape, generator=generator), 1.0) * delta.norm(dim=-1, keepdim=True)
        sweep.record(eps, right(per_token(gradient(zero), radius)), right(delta), right(noise))
    return sweep.result("PGD (white-box, token embeddings)", TEXT_EPSILON)


def black_box(subject: TrustSubject, *, seed: int = 0) -> AdversarialResult:
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    rng = np.random.default_rng(seed)
    proba = subject.proba_for_queries()  # ~100 sequential small calls: the fastest runtime of the model
    numeric = list(subject.numeric)
    members = subject.members.x[numeric]
    mean = members.mean().fillna(0.0).to_numpy()
    std = members.std().fillna(0.0).to_numpy()
    std[std == 0] = 1.0
    rows = subject.held_out
    picked = rows.take(np.sort(rng.choice(len(rows), min(BLACK_BOX_ROWS, len(rows)), replace=False)))
    column = {label: i for i, label in enumerate(subject.classes)}
    truths = np.array([column.get(label, -1) for label in picked.y])
    starts = np.nan_to_num((picked.x[numeric].to_numpy(dtype=float) - mean) / std)  # a missing value: the mean
    fixed = {c: picked.x[c].to_numpy() for c in picked.x.columns if c not in set(numeric)}

    def answer_all(queries: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """One frame for a round's points: each row's fixed columns beside its moved numbers."""
        rows = np.concatenate([np.full(len(z), i) for i, z in queries])
        values = np.vstack([z for _, z in queries]) * std + mean
        data = {c: values[:, j] for j, c in enumerate(numeric)} | {c: v[rows] for c, v in fixed.items()}
        out = np.asarray(proba(subject.consistent(pd.DataFrame(data)[list(picked.x.columns)])))
        bounds = np.cumsum([0] + [len(z) for _, z in queries])
        return [out[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    predictor = CoalescingPredictor(answer_all, len(picked))
    sizes = np.full(len(picked), np.inf)  # RMS perturbation of the nearest flipping point asked about, per row
    correct = np.zeros(len(picked), dtype=bool)
    stalled: list[int] = []  # rows whose attack was stopped (_RowStalled)

    # ART's HopSkipJump, given no clip values, searches the box between the row's own smallest
    # and largest value, where a random start may find no other class: give it a box wide
    # enough for the data (in training stds) and a start it need not search for, the nearest
    # training row (numbers moved, this row's categories kept) that the model labels otherwise
    box = float(max(BOX_STDS, np.abs(starts).max() + 1.0))
    pool = subject.members.take(
        np.sort(rng.choice(len(subject.members), min(ANCHOR_ROWS, len(subject.members)), replace=False))
    )
    anchors = np.nan_to_num((pool.x[numeric].to_numpy(dtype=float) - mean) / std)
    anchor_labels = np.asarray(proba(pool.x)).argmax(axis=1)

    def initial_point(i: int, predict: Any) -> np.ndarray | None:
        others = anchors[anchor_labels != truths[i]]
        if not len(others):
            return None
        nearest = others[np.argsort(np.linalg.norm(others - starts[i], axis=1))[:INIT_CANDIDATES]]
        flipped = predict(nearest).argmax(axis=1) != truths[i]
        return nearest[np.argmax(flipped)] if flipped.any() else None

    def attack_row(i: int) -> None:
        calls, repeats, last = 0, 0, None

        def predict(z: np.ndarray) -> np.ndarray:
            """The model's answers; every flipping point asked about is a perturbation found."""
            nonlocal calls, repeats, last
            calls += 1
            repeats = repeats + 1 if last is not None and len(z) == 1 and np.array_equal(z, last) else 0
            last = z.copy()
            if calls > MAX_ROW_CALLS or repeats >= STUCK_REPEATS:
                raise _RowStalled
            answers = predictor.ask((i, z))
            flipped = answers.argmax(axis=1) != truths[i]
            if flipped.any():
                found = np.sqrt(np.mean((z[flipped] - starts[i]) ** 2, axis=1)).min()
                sizes[i] = min(sizes[i], float(found))
            return answers

        try:
            start = starts[i]
            if predict(start[None, :]).argmax(axis=1)[0] != truths[i]:
                return
            correct[i] = True
            initial = initial_point(i, predict)
            classifier = BlackBoxClassifier(predict, start.shape, len(subject.classes), clip_values=(-box, box))
            hsj = HopSkipJump(
                classifier, norm=2, max_iter=HSJ_MAX_ITER, max_eval=HSJ_MAX_EVAL, init_eval=HSJ_INIT_EVAL, verbose=False
            )
            adversarial = hsj.generate(
                start[None, :].astype("float64"), x_adv_init=None if initial is None else initial[None, :]
            )[0]
            predict(adversarial[None, :])  # HopSkipJump's answer, recorded in `sizes` when it flips
        except _RowStalled:
            stalled.append(i)  # the nearest flip it had asked about stands
        finally:
            predictor.leave()  # also when the attack fails: the other rows' rounds must go on

    # a row HopSkipJump cannot flip is counted as robust; ART's warning per such row is noise here
    logging.getLogger("art.attacks.evasion.hop_skip_jump").setLevel(logging.ERROR)
    np.random.seed(seed)  # ART draws from numpy's global generator (shared by the threads)
    run_in_threads([functools.partial(attack_row, i) for i in range(len(picked))], name="hopskipjump")
    log.info("black-box attack: %d rows, %d batched model calls", len(picked), predictor.calls)
    if stalled:
        log.warning(
            "black-box attack: HopSkipJump was stopped on %d of %d rows (its step-size search found no "
            "adversarial point: %d calls of one point in a row, or %d model calls); their nearest flip "
            "asked about is used",
            len(stalled),
            len(picked),
            STUCK_REPEATS,
            MAX_ROW_CALLS,
        )
    robust = int(np.sum(correct & (sizes > TABLE_EPSILON)))
    return AdversarialResult(
        attack="HopSkipJump (black-box, L2)",
        epsilon=TABLE_EPSILON,
        clean_accuracy=float(np.mean(correct)),
        accuracy=robust / len(picked),
        median_perturbation=_median(sizes[correct]),
        rows=len(picked),
    )
