"""A small torch multilayer perceptron with the scikit-learn estimator contract.

It fits on dense float features (the output of the preprocessing step), so it sits at
the end of a scikit-learn Pipeline like any other model and exports to ONNX through
the converter in `automl_tasks.estimators.onnx.converters`.

Early stopping: `epochs` is a maximum. A seeded `validation_fraction` of the fit rows is
held out; after every epoch the loss on it is measured, the best weights are kept and
training stops after `patience` epochs without improvement; the best weights are
restored. Why: with a fixed epoch count, the count that looked right for a search trial
(fit on the train split) over-trains the final refit (fit on train+validation: more
gradient steps per epoch, and no validation rows left to notice). Measured on a price
table (benchmarks/refit_stability.py): without early stopping validation R² peaked near
epoch 10 and the 100-epoch refit lost 0.10-0.15 R² on the test split. Gradients are also
clipped, so one heavy-tailed batch cannot throw the weights far at a large learning rate.
"""

from __future__ import annotations

import threading

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

#: fewer held-out rows than this and the MLP trains all its epochs without early stopping
MIN_EARLY_STOPPING_ROWS = 20
GRADIENT_CLIP_NORM = 5.0
#: held for a whole fit: torch's global generator is one per process (see `_train`)
_GLOBAL_GENERATOR = threading.Lock()


def _build_network(n_in: int, n_out: int, hidden_units: int, n_layers: int):  # -> torch.nn.Sequential
    import torch

    layers: list[torch.nn.Module] = []
    width = n_in
    for _ in range(n_layers):
        layers += [torch.nn.Linear(width, hidden_units), torch.nn.ReLU()]
        width = hidden_units
    layers.append(torch.nn.Linear(width, n_out))
    return torch.nn.Sequential(*layers)


class _TorchMLP(BaseEstimator):
    """Shared training loop; subclasses choose the loss and the output head."""

    def __init__(
        self,
        hidden_units: int = 64,
        n_layers: int = 2,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-4,
        epochs: int = 60,
        batch_size: int = 64,
        random_state: int = 0,
        validation_fraction: float = 0.1,
        patience: int = 10,
        dp_epsilon: float = 0.0,
    ) -> None:
        self.hidden_units = hidden_units
        self.n_layers = n_layers
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.dp_epsilon = dp_epsilon  # > 0: DP-SGD spending this epsilon (estimators/private_training)

    def _holdout(self, n_rows: int, generator) -> tuple[object, object | None]:
        """(fit positions, early-stopping positions or None when too few rows to spare)."""
        import torch

        order = torch.randperm(n_rows, generator=generator)
        n_valid = int(n_rows * self.validation_fraction)
        if n_valid < MIN_EARLY_STOPPING_ROWS:
            return order, None
        return order[n_valid:], order[:n_valid]

    def _train(self, features: np.ndarray, targets: np.ndarray, n_out: int, loss_fn) -> None:
        # torch's global generator, seeded here, draws the initial weights (and any dropout):
        # two fits in threads at once (an ensemble's members, a threaded search) would draw
        # from it in turn and give models that depend on the timing, so one fit at a time
        with _GLOBAL_GENERATOR:
            self._train_seeded(features, targets, n_out, loss_fn)

    def _train_seeded(self, features: np.ndarray, targets: np.ndarray, n_out: int, loss_fn) -> None:
        import torch

        torch.manual_seed(self.random_state)
        x_all = torch.as_tensor(np.asarray(features, dtype=np.float32))
        y_all = torch.as_tensor(targets)
        generator = torch.Generator().manual_seed(self.random_state)
        fit, held = self._holdout(len(x_all), generator)
        x, y = x_all[fit], y_all[fit]
        self.network_ = _build_network(x.shape[1], n_out, self.hidden_units, self.n_layers)
        optimiser = torch.optim.AdamW(self.network_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        self.dp_epsilon_ = None
        if self.dp_epsilon and self.dp_epsilon > 0:
            self._train_private(x_all, y_all, loss_fn, optimiser)
            self.n_features_in_ = x_all.shape[1]
            return
        best_loss, best_state, since_best = float("inf"), None, 0
        self.n_epochs_run_ = self.best_epoch_ = 0
        for epoch in range(1, self.epochs + 1):
            self.network_.train()
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimiser.zero_grad()
                loss = loss_fn(self.network_(x[batch]), y[batch])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.network_.parameters(), GRADIENT_CLIP_NORM)
                optimiser.step()
            self.n_epochs_run_ = epoch
            if held is None:
                continue
            self.network_.eval()
            with torch.no_grad():
                held_loss = float(loss_fn(self.network_(x_all[held]), y_all[held]))
            if held_loss < best_loss:
                best_loss, since_best, self.best_epoch_ = held_loss, 0, epoch
                best_state = {k: v.detach().clone() for k, v in self.network_.state_dict().items()}
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        if best_state is not None:
            self.network_.load_state_dict(best_state)
        else:
            self.best_epoch_ = self.n_epochs_run_
        self.network_.eval()
        self.n_features_in_ = x.shape[1]

    def _train_private(self, x, y, loss_fn, optimiser) -> None:
        """DP-SGD on every row for all `epochs` (early stopping would select on private rows
        outside the accountant); `dp_epsilon_` is the accountant's final epsilon,
        `dp_epsilon_history_` its value after each epoch."""
        from automl_tasks.estimators.private_training import make_private

        private = make_private(
            self.network_,
            optimiser,
            (x, y),
            batch_size=self.batch_size,
            epochs=self.epochs,
            epsilon=self.dp_epsilon,
            seed=self.random_state,
        )
        for _ in range(self.epochs):
            private.module.train()
            for xb, yb in private.loader:
                if len(xb) == 0:  # Poisson sampling may draw an empty batch
                    continue
                private.optimiser.zero_grad()
                loss_fn(private.module(xb), yb).backward()
                private.optimiser.step()
            private.end_epoch()
        self.network_ = private.finish().eval()
        self.n_epochs_run_ = self.best_epoch_ = self.epochs
        self.dp_epsilon_, self.dp_delta_ = private.epsilons[-1], private.delta
        self.dp_epsilon_history_ = list(private.epsilons)

    def _forward(self, features: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.network_(torch.as_tensor(np.asarray(features, dtype=np.float32))).numpy()

    def layer_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight, bias) of each Linear layer, in order; used by the ONNX converter."""
        import torch

        return [
            (m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
            for m in self.network_
            if isinstance(m, torch.nn.Linear)
        ]


class TorchMLPClassifier(ClassifierMixin, _TorchMLP):
    """MLP classifier trained with cross-entropy; `classes_` keeps the original labels."""

    def fit(self, X, y):  # noqa: N803
        import torch

        self.classes_, encoded = np.unique(np.asarray(y), return_inverse=True)
        self._train(X, encoded.astype(np.int64), len(self.classes_), torch.nn.functional.cross_entropy)
        return self

    def predict_proba(self, X):  # noqa: N803
        logits = self._forward(X)
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X):  # noqa: N803
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class TorchMLPRegressor(RegressorMixin, _TorchMLP):
    """MLP regressor trained with MSE on a standardised target."""

    def fit(self, X, y):  # noqa: N803
        import torch

        target = np.asarray(y, dtype=np.float32)
        self.y_mean_, self.y_scale_ = float(target.mean()), float(target.std() or 1.0)
        scaled = ((target - self.y_mean_) / self.y_scale_).reshape(-1, 1)
        self._train(X, scaled, 1, torch.nn.functional.mse_loss)
        return self

    def predict(self, X):  # noqa: N803
        return self._forward(X)[:, 0] * self.y_scale_ + self.y_mean_
