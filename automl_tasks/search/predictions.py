"""Each search trial's predictions on its scoring rows, kept for ensemble selection.

A worker saves them beside the study in the workspace (one small .npz per completed trial:
the scoring rows and the prediction of every fold, float32, plus the classes); the task
estimator reads the best trials' files after the search and deletes the folder once the
version is registered. Files rather than MLflow artifacts: the workers run on the
workspace's machine in the embedded mode, and a trial must not pay an artifact upload
(the worker benchmark counts every millisecond of a trial's bookkeeping). With MLflow's
tracking server (the distributed mode: workers on other machines) each file also goes to
the pipeline run's artifacts, through the server, and the task estimator fetches the ones
its machine lacks.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automl_tasks.core.settings import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldPredictions:
    """One trial's (scoring rows, prediction) per search fold, and the classifier's classes."""

    number: int
    rows: list[np.ndarray]
    predictions: list[np.ndarray]
    classes: np.ndarray | None
    best_iterations: list[int] | None = None  # each fold's early-stopped tree count, if any

    def aligned_with(self, other: FoldPredictions) -> bool:
        """Whether both trials scored the same rows, with the same prediction layout."""
        return (
            len(self.rows) == len(other.rows)
            and all(np.array_equal(a, b) for a, b in zip(self.rows, other.rows, strict=True))
            and all(a.shape == b.shape for a, b in zip(self.predictions, other.predictions, strict=True))
            and (self.classes is None) == (other.classes is None)
            and (self.classes is None or np.array_equal(self.classes, other.classes))
        )


def predictions_dir(ws: Workspace, study_name: str) -> Path:
    return ws.runs / study_name / "predictions"


def _through_server(ws: Workspace) -> bool:
    """Whether MLflow is a tracking server (the distributed mode): files travel through it."""
    return ws.mlflow_uri.startswith(("http://", "https://"))


def _artifact_folder(study_name: str) -> str:
    return f"predictions/{study_name}"


def save_fold_predictions(
    ws: Workspace,
    study_name: str,
    number: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    classes: object = None,
    best_iterations: list[int | None] | None = None,
    *,
    parent_run_id: str = "",
) -> None:
    """Write trial `number`'s fold predictions (see `TabularEstimator.fold_predictions`) and,
    for early-stopped trees, each fold's best iteration (an ensemble member's refit reuses them);
    through a tracking server, also as an artifact of the pipeline run `parent_run_id`."""
    arrays: dict[str, np.ndarray] = {}
    if best_iterations and all(b is not None for b in best_iterations):
        arrays["best_iterations"] = np.asarray(best_iterations, dtype=np.int64)
    for f, (rows, prediction) in enumerate(folds):
        arrays[f"rows_{f}"] = np.asarray(rows, dtype=np.int64)
        arrays[f"pred_{f}"] = np.asarray(prediction, dtype=np.float32)
    if classes is not None:
        classes = np.asarray(classes)
        arrays["classes"] = classes.astype(str) if classes.dtype == object else classes  # no pickles
    folder = predictions_dir(ws, study_name)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".trial-{number}.npz"
    with partial.open("wb") as handle:
        np.savez(handle, **arrays)
    path = folder / f"trial-{number}.npz"
    partial.replace(path)  # readers never see half a file
    if parent_run_id and _through_server(ws):
        from automl_tasks.core.tracking import mlflow_client

        mlflow_client(ws).log_artifact(parent_run_id, str(path), _artifact_folder(study_name))


def load_fold_predictions(
    ws: Workspace, study_name: str, number: int, *, parent_run_id: str = ""
) -> FoldPredictions | None:
    """Trial `number`'s saved fold predictions; None when it saved none (or they are unreadable).
    A trial evaluated on another machine: its file from the pipeline run's artifacts."""
    path = predictions_dir(ws, study_name) / f"trial-{number}.npz"
    if not path.exists() and parent_run_id and _through_server(ws):
        _fetch(ws, parent_run_id, study_name, path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            n_folds = sum(1 for key in data.files if key.startswith("rows_"))
            rows = [data[f"rows_{f}"] for f in range(n_folds)]
            predictions = [data[f"pred_{f}"].astype(np.float64) for f in range(n_folds)]
            classes = data["classes"] if "classes" in data.files else None
            bests = [int(b) for b in data["best_iterations"]] if "best_iterations" in data.files else None
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring trial %d's predictions (%s): %s", number, path, exc)
        return None
    return FoldPredictions(number, rows, predictions, classes, bests)


def _fetch(ws: Workspace, parent_run_id: str, study_name: str, path: Path) -> None:
    """Download `path`'s file from the pipeline run's artifacts (nothing when it is not there)."""
    from mlflow.exceptions import MlflowException

    from automl_tasks.core.tracking import download_artifact

    try:
        download_artifact(ws, parent_run_id, f"{_artifact_folder(study_name)}/{path.name}", path)
    except (MlflowException, OSError) as exc:
        log.info("no saved predictions %s on run %s: %s", path.name, parent_run_id, exc)


def drop_predictions(ws: Workspace, study_name: str) -> None:
    """Delete the study's saved predictions (after its version is registered)."""
    shutil.rmtree(predictions_dir(ws, study_name), ignore_errors=True)
