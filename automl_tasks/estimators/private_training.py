"""Differentially private training of torch networks (DP-SGD through Opacus).

A network trained with `dp_epsilon` > 0 has per-example gradients clipped to
`max_grad_norm` and Gaussian noise added, with the noise calibrated by Opacus' RDP
accountant so that the whole training (its epochs, its Poisson-sampled batches) spends at
most (epsilon, delta). The accountant's final epsilon is what the version records.

What the epsilon covers, said plainly: the network's weights. Not the preprocessing's
statistics (imputation medians, scaling, category lists), not the search's choice among
trials (each trial is trained privately, but picking the best by validation score is not
accounted), and not early stopping, which is therefore off under DP: every epoch runs.
Tree models have no DP option in loopml.

Opacus runs with `secure_mode` off: its secure mode needs `torchcsprng`, which is not in
the lock, so the noise comes from torch's seeded generator. That is what DP experiments
and the accountant's figure assume; against an adversary who can predict the generator's
state it is not a formal guarantee (Opacus warns of this on every run; we say it here once).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

#: per-example gradient norm bound of DP-SGD
DEFAULT_MAX_GRAD_NORM = 1.0


def default_delta(n_rows: int) -> float:
    """delta well below 1/n (a delta near 1/n would allow publishing a whole row): 1/(10 n), at most 1e-5."""
    return min(1e-5, 0.1 / max(n_rows, 1))


@dataclass
class PrivateTraining:
    """The private module, optimiser and Poisson-sampled loader Opacus made, and the accountant."""

    module: Any
    optimiser: Any
    loader: Any
    engine: Any
    delta: float
    epsilons: list[float] = field(default_factory=list)  # the accountant's epsilon after each epoch

    def end_epoch(self) -> float:
        """Record and return the privacy spent so far."""
        spent = float(self.engine.get_epsilon(self.delta))
        self.epsilons.append(spent)
        return spent

    def finish(self) -> Any:
        """The trained network as a plain module: Opacus' per-sample-gradient hooks and
        parameter attributes removed (a later backward pass, e.g. a white-box attack, would
        trip on them), so it pickles, exports and differentiates as usual."""
        cleanup = getattr(self.module, "cleanup", None)
        if cleanup is not None:
            cleanup()
        return getattr(self.module, "_module", self.module)


def make_private(
    network: Any,
    optimiser: Any,
    tensors: tuple[Any, ...],
    *,
    batch_size: int,
    epochs: int,
    epsilon: float,
    seed: int,
    max_grad_norm: float = DEFAULT_MAX_GRAD_NORM,
) -> PrivateTraining:
    """Wrap `network` and `optimiser` for DP-SGD over the rows `tensors` (inputs, targets),
    with the noise that spends `epsilon` (at `default_delta`) over `epochs` epochs."""
    import torch
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    if epsilon <= 0:
        raise ValueError(f"dp_epsilon must be > 0 for private training; got {epsilon!r}")
    dataset = TensorDataset(*tensors)
    delta = default_delta(len(dataset))
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True, generator=generator)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")  # said in this module's docstring
        engine = PrivacyEngine(accountant="rdp")
    module, private_optimiser, private_loader = engine.make_private_with_epsilon(
        module=network,
        optimizer=optimiser,
        data_loader=loader,
        target_epsilon=float(epsilon),
        target_delta=delta,
        epochs=int(epochs),
        max_grad_norm=max_grad_norm,
        noise_generator=torch.Generator().manual_seed(seed + 1),
    )
    return PrivateTraining(module, private_optimiser, private_loader, engine, delta)
