"""Membership-inference privacy: can an attacker tell the rows a model was trained on?

The loss-threshold attack (Yeom et al., 2018): a row whose loss under the model is low is
guessed to be a training row. It needs no shadow models and is the attack a shadow-model
attack reduces to when the target's loss is observable; its ROC AUC over an equal number
of training rows and never-seen rows is the leak (0.5: none), and its advantage
(max TPR - FPR over thresholds, Yeom's membership advantage) bounds what any threshold
on the loss reveals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from automl_tasks.trust.subject import TEXT, Rows, TrustSubject

#: rows of each side (members, non-members) the attack scores at most (texts: fewer, a
#: transformer's forward pass each)
MAX_ROWS_PER_SIDE = 2000
MAX_TEXT_ROWS_PER_SIDE = 500
#: probability floor in the log loss (a certain wrong answer would be an infinite loss)
PROBABILITY_FLOOR = 1e-12


@dataclass(frozen=True)
class MembershipResult:
    auc: float  # ROC AUC of the attack; 0.5 = it cannot tell members from non-members
    advantage: float  # max over thresholds of TPR - FPR
    rows_per_side: int


def row_losses(subject: TrustSubject, rows: Rows) -> np.ndarray:
    """Each row's loss: -log p(true class) for classifiers, squared error for regressors."""
    if subject.classifies:
        proba = np.asarray(subject.predict_proba(rows.x))
        column = {label: i for i, label in enumerate(subject.classes)}
        index = np.array([column.get(label, -1) for label in rows.y])
        true_p = np.where(index >= 0, proba[np.arange(len(index)), np.maximum(index, 0)], 0.0)
        return -np.log(np.clip(true_p, PROBABILITY_FLOOR, 1.0))
    predicted = np.asarray(subject.predict(rows.x), dtype=float)
    return (predicted - np.asarray(rows.y, dtype=float)) ** 2


def loss_threshold_attack(subject: TrustSubject, *, seed: int = 0) -> MembershipResult:
    """Attack `subject` with equal samples of its members and held-out rows."""
    from sklearn.metrics import roc_auc_score, roc_curve

    most = MAX_TEXT_ROWS_PER_SIDE if subject.kind == TEXT else MAX_ROWS_PER_SIDE
    n = min(len(subject.members), len(subject.held_out), most)
    if n < 10:
        raise ValueError(f"membership inference needs at least 10 training and 10 held-out rows; has {n}")
    rng = np.random.default_rng(seed)
    members = subject.members.take(rng.choice(len(subject.members), n, replace=False))
    others = subject.held_out.take(rng.choice(len(subject.held_out), n, replace=False))
    # a lower loss says "member": the attack's score is the negative loss
    scores = -np.concatenate([row_losses(subject, members), row_losses(subject, others)])
    is_member = np.concatenate([np.ones(n), np.zeros(n)])
    fpr, tpr, _ = roc_curve(is_member, scores)
    return MembershipResult(float(roc_auc_score(is_member, scores)), float(np.max(tpr - fpr)), n)
