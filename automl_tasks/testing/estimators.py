"""`check_estimator`: the contract of `automl_tasks.estimators.Estimator`."""

from __future__ import annotations

import inspect
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl_tasks.testing._common import require

#: what a contributor's estimator is checked on unless told otherwise (a bundled table)
DEFAULT_DATA = {"dataset": "breast_cancer", "target": "target", "task_type": "binary", "metric": "roc_auc"}


def check_estimator(
    cls: type,
    *,
    model_args: Mapping[str, Any] | None = None,
    dataset: str = DEFAULT_DATA["dataset"],
    target: str = DEFAULT_DATA["target"],
    task_type: str = DEFAULT_DATA["task_type"],
    metric: str = DEFAULT_DATA["metric"],
    run_epochs: int | None = None,
    workdir: str | Path | None = None,
) -> None:
    """Check that `cls` behaves as the search workers and the task estimator expect.

    Runs it as a search trial and as the final trainer on a bundled table (`dataset`),
    with `model_args` (one configuration of its space), and raises AssertionError naming
    the first broken rule:

    - a concrete subclass of Estimator, built with the keyword-only constructor;
    - a trial's `run()` returns an EstimatorResult with a finite float score and saves nothing;
    - the final trainer's `run()` saves its model under `output_dir` and returns that path;
    - intermediate scores go through `report()`: when the search says stop, the run ends
      with `TrialPruned` (an estimator that never reports is fine);
    - `predict` (if implemented) answers one prediction per row, and `export_onnx` (if
      implemented) gives an ONNX model that ONNX Runtime runs like `predict`.
    """
    from automl_tasks.estimators.base import Estimator

    require(isinstance(cls, type) and issubclass(cls, Estimator), f"{cls!r} is not a subclass of Estimator")
    require(not inspect.isabstract(cls), f"{cls.__name__} leaves abstract methods unimplemented: {_abstract(cls)}")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="loopml-check-") as tmp:
            _check(cls, dict(model_args or {}), dataset, target, task_type, metric, run_epochs, Path(tmp))
    else:
        _check(cls, dict(model_args or {}), dataset, target, task_type, metric, run_epochs, Path(workdir))


def _check(cls, model_args, dataset, target, task_type, metric, run_epochs, workdir: Path) -> None:
    from automl_tasks.core.errors import TrialPruned
    from automl_tasks.data import bundled_frame
    from automl_tasks.estimators.base import DataSpec, EstimatorResult
    from automl_tasks.estimators.metrics import Metric

    workdir.mkdir(parents=True, exist_ok=True)
    frame = bundled_frame(dataset)
    require(target in frame.columns, f"the bundled table {dataset!r} has no column {target!r}")
    path = workdir / "data.parquet"
    frame.to_parquet(path)
    data = DataSpec(str(path), target, task_type)

    def build(is_trainer: bool, output_dir: Path | None = None):
        try:
            return cls(
                run_epochs=run_epochs,
                data=data,
                is_trainer=is_trainer,
                model_args=model_args,
                metric=Metric(metric),
                output_dir=output_dir,
            )
        except TypeError as exc:
            raise AssertionError(
                f"{cls.__name__} cannot be built with Estimator's keyword-only constructor "
                f"(run_epochs, data, is_trainer, model_args, metric, output_dir): {exc}"
            ) from exc

    result = _run(cls, build(is_trainer=False), "a search trial's")
    require(
        isinstance(result, EstimatorResult),
        f"{cls.__name__}.run() returned {type(result).__name__}, not an EstimatorResult",
    )
    require(
        isinstance(result.score, int | float) and math.isfinite(result.score),
        f"{cls.__name__}: a search trial scored {result.score!r}; the score must be a finite number",
    )
    require(result.model_path is None, f"{cls.__name__}: a search trial saved a model ({result.model_path})")

    reports: list[tuple[float, int]] = []

    def stop_at_once(value: float, step: int) -> bool:
        reports.append((value, step))
        return True

    stopped = build(is_trainer=False)
    stopped.reporter = stop_at_once
    try:
        stopped.run()
    except TrialPruned:
        pass
    except Exception as exc:
        raise AssertionError(
            f"{cls.__name__}: told to stop at its first intermediate score, it raised {type(exc).__name__}: {exc}; "
            "let the TrialPruned of self.report(...) propagate"
        ) from exc
    else:
        # one report is allowed to finish: at its last step an estimator keeps its score (Estimator.report)
        require(
            len(reports) <= 1,
            f"{cls.__name__} reported an intermediate score, was told to stop and went on: call self.report(...) "
            "and let its TrialPruned propagate",
        )

    output_dir = workdir / "final"
    final = build(is_trainer=True, output_dir=output_dir)
    saved = _run(cls, final, "the final trainer's")
    require(
        saved.model_path is not None and Path(saved.model_path).exists(),
        f"{cls.__name__}: the final trainer's save() must write the model and return its path; got {saved.model_path!r}",
    )
    require(
        Path(saved.model_path).resolve().is_relative_to(output_dir.resolve()),
        f"{cls.__name__}: the final trainer saved {saved.model_path} outside its output_dir {output_dir}",
    )
    require(
        math.isfinite(saved.score),
        f"{cls.__name__}: the final trainer scored {saved.score!r}; expected a finite number",
    )

    rows = frame.drop(columns=[target]).head(20)
    if _implements(cls, "predict"):
        predictions = final.predict(rows)
        require(
            len(predictions) == len(rows),
            f"{cls.__name__}.predict gave {len(predictions)} answers for {len(rows)} rows",
        )
        if _implements(cls, "export_onnx"):
            _check_onnx(cls, final, rows, predictions, workdir)


def _run(cls: type, estimator: Any, what: str) -> Any:
    try:
        return estimator.run()
    except Exception as exc:
        raise AssertionError(f"{cls.__name__}: {what} run() raised {type(exc).__name__}: {exc}") from exc


def _check_onnx(cls, final, rows, predictions, workdir: Path) -> None:
    import numpy as np
    import onnxruntime as rt

    path = final.export_onnx(workdir / "model.onnx")
    require(Path(path).exists(), f"{cls.__name__}.export_onnx returned {path}, which does not exist")
    session = rt.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    answer = np.asarray(final.onnx_labels(session.run(None, final.onnx_feed(rows)))).ravel()
    native = np.asarray(predictions).ravel()
    same = answer.shape == native.shape and (
        np.array_equal(answer, native)
        if answer.dtype.kind not in "fc"
        else np.allclose(answer.astype(float), native.astype(float), rtol=1e-4, atol=1e-5)
    )
    require(same, f"{cls.__name__}: ONNX Runtime answered {answer[:5]} where predict answered {native[:5]}")


def _implements(cls: type, method: str) -> bool:
    from automl_tasks.estimators.base import Estimator

    return getattr(cls, method) is not getattr(Estimator, method)


def _abstract(cls: type) -> list[str]:
    return sorted(getattr(cls, "__abstractmethods__", ()))
