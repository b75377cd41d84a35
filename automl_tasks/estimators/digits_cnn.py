"""A torch image classifier for 8x8 digit images (scikit-learn's digits), searched as a
conditional network tree: depth first, then each block's type and width, as in
OmniForce's multilayer example. Epochs are the fidelity: `run_epochs` overrides them.

Input: a table whose 64 pixel columns (`pixel_0` .. `pixel_63`, values 0..16) form the
image, plus the target column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from automl_tasks.data.splits import make_splits
from automl_tasks.estimators.base import Estimator, EstimatorResult

SIDE = 8


def _pixels(frame: pd.DataFrame, target: str) -> np.ndarray:
    columns = [c for c in frame.columns if c != target]
    if len(columns) != SIDE * SIDE:
        raise ValueError(f"digits_cnn expects {SIDE * SIDE} pixel columns; the table has {len(columns)}")
    return (frame[columns].to_numpy(dtype="float32") / 16.0).reshape(-1, 1, SIDE, SIDE)


def build_network(config: dict, n_classes: int):  # -> torch.nn.Module
    """Conv blocks (3x3, padding 1) keep the 8x8 grid; the first dense block flattens it."""
    import torch

    layers: list[torch.nn.Module] = []
    channels, flat = 1, False
    for i in range(1, int(config["depth"]) + 1):
        kind = config[f"block{i}"]
        width = int(config[f"block{i}.{kind}.width"])
        if kind == "conv":
            if flat:
                raise ValueError(f"block{i}: a conv block cannot follow a dense block")
            layers += [torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.ReLU()]
            channels = width
        else:
            if not flat:
                layers.append(torch.nn.Flatten())
                channels, flat = channels * SIDE * SIDE, True
            layers += [torch.nn.Linear(channels, width), torch.nn.ReLU()]
            channels = width
    if not flat:
        layers.append(torch.nn.Flatten())
        channels *= SIDE * SIDE
    layers.append(torch.nn.Linear(channels, n_classes))
    return torch.nn.Sequential(*layers)


class DigitsCNNEstimator(Estimator):
    """Searched network on the digits images; scored with accuracy on fixed splits."""

    def _load(self) -> None:
        frame = pd.read_parquet(self.data.path)
        self.images_ = _pixels(frame, self.data.target)
        self.classes_ = np.sort(frame[self.data.target].unique())
        self.target_ = np.searchsorted(self.classes_, frame[self.data.target].to_numpy())
        self.splits_ = make_splits(frame[self.data.target], "multiclass", seed=self.data.split_seed)

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.splits_
        return (np.concatenate([s.train, s.valid]), s.test) if self.is_trainer else (s.train, s.valid)

    def train(self) -> None:
        import torch

        self._load()
        torch.manual_seed(self.data.split_seed)
        fit_rows, _ = self._rows()
        self.network_ = build_network(self.model_args, len(self.classes_))
        optimiser = torch.optim.Adam(self.network_.parameters(), lr=float(self.model_args.get("learning_rate", 0.01)))
        x = torch.from_numpy(self.images_[fit_rows])
        y = torch.from_numpy(self.target_[fit_rows]).long()
        epochs = self.run_epochs or int(self.model_args.get("epochs", 10))
        generator = torch.Generator().manual_seed(self.data.split_seed)
        dp_epsilon = float(self.model_args.get("dp_epsilon", 0) or 0)
        self.dp_epsilon_ = None
        if dp_epsilon > 0:
            self._train_private(optimiser, x, y, epochs, dp_epsilon)
            return
        for epoch in range(1, epochs + 1):
            self.network_.train()
            for batch in torch.randperm(len(x), generator=generator).split(64):
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(self.network_(x[batch]), y[batch])
                loss.backward()
                optimiser.step()
            self.network_.eval()
            self._report_epoch(epoch, last=epoch == epochs)

    def _report_epoch(self, epoch: int, *, last: bool) -> None:
        if self.reporter is not None and not self.is_trainer:
            self.report(self.calculate_score().score, epoch, last=last)  # lets Hyperband / ASHA stop poor trials

    def _train_private(self, optimiser, x, y, epochs: int, epsilon: float) -> None:
        """DP-SGD (estimators/private_training): `dp_epsilon_` is the accountant's final epsilon."""
        import torch

        from automl_tasks.estimators.private_training import make_private

        private = make_private(
            self.network_, optimiser, (x, y), batch_size=64, epochs=epochs, epsilon=epsilon, seed=self.data.split_seed
        )
        for epoch in range(1, epochs + 1):
            private.module.train()
            for xb, yb in private.loader:
                if len(xb) == 0:  # Poisson sampling may draw an empty batch
                    continue
                private.optimiser.zero_grad()
                torch.nn.functional.cross_entropy(private.module(xb), yb).backward()
                private.optimiser.step()
            private.end_epoch()
            private.module.eval()
            self._report_epoch(epoch, last=epoch == epochs)  # scored through the wrapper: its forward is the network's
        self.network_ = private.finish().eval()
        self.dp_epsilon_, self.dp_epsilon_history_ = private.epsilons[-1], list(private.epsilons)

    def _logits(self, images: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.network_(torch.from_numpy(images)).numpy()

    def calculate_score(self) -> EstimatorResult:
        _, rows = self._rows()
        predicted = self._logits(self.images_[rows]).argmax(axis=1)
        score = float(np.mean(predicted == self.target_[rows]))
        return EstimatorResult(score=score, metrics={"accuracy": score})

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.classes_[self._logits(_pixels(frame, self.data.target)).argmax(axis=1)]

    def save(self, path: Path) -> str:
        import torch

        path.mkdir(parents=True, exist_ok=True)
        target = path / "network.pt"
        torch.save(self.network_, target)
        return str(target)

    def export_onnx(self, path: Path) -> Path:
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        example = torch.zeros(1, 1, SIDE, SIDE)
        torch.onnx.export(
            self.network_,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
        return path

    def onnx_feed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"image": _pixels(frame, self.data.target)}

    def onnx_labels(self, outputs: list[np.ndarray]) -> np.ndarray:
        return self.classes_[outputs[0].argmax(axis=1)]
