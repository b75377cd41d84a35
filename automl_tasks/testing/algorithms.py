"""`check_algorithm_spec`: the contract of an algorithm folder (`algorithm.yaml` + code)."""

from __future__ import annotations

from pathlib import Path

from automl_tasks.testing._common import require


def check_algorithm_spec(path: str | Path, *, run_estimator: bool = True) -> None:
    """Check an algorithm folder (or its algorithm.yaml) before registering it.

    Raises AssertionError naming the first broken rule:

    - algorithm.yaml parses and has every required key (the loader's message names the key);
    - `estimator` imports and is an Estimator subclass;
    - the search space parses, its default configuration is one of its configurations,
      and the declared `defaults` name parameters of the space;
    - `fidelity`, if declared, is a numeric parameter of the space;
    - the smoke test's dataset is bundled, has the target column, its task type is one of
      `task_types` and its metric fits that task;
    - with `run_estimator`, the estimator passes `check_estimator` on the smoke dataset
      with the default configuration (the registration smoke test then tries the rest).
    """
    from automl_tasks.algorithms.spec import load_spec
    from automl_tasks.core.errors import LoopmlError
    from automl_tasks.data import bundled_frame
    from automl_tasks.estimators import estimator_class
    from automl_tasks.estimators.metrics import resolve_metric
    from automl_tasks.testing.estimators import check_estimator

    try:
        spec = load_spec(Path(path))
        cls = estimator_class(spec.estimator)
        space = spec.space()
    except LoopmlError as exc:
        raise AssertionError(f"{path}: {exc}") from exc
    names = set(space.names())
    default = space.default_config()
    require(set(default) <= names, f"{spec.source}: the space's default configuration names unknown parameters")
    unknown = sorted(set(spec.defaults) - names)
    require(not unknown, f"{spec.source}: defaults: {unknown} are not parameters of the search space")
    if spec.fidelity is not None:
        param = space.find(spec.fidelity)
        require(
            param is not None and param.is_numeric,
            f"{spec.source}: fidelity: {spec.fidelity!r} is not a numeric parameter of the search space",
        )
    smoke = spec.smoke_test
    try:
        frame = bundled_frame(smoke["dataset"])
        resolve_metric(smoke["metric"], smoke["task_type"])
    except (LoopmlError, ValueError) as exc:
        raise AssertionError(f"{spec.source}: smoke_test: {exc}") from exc
    require(
        smoke["target"] in frame.columns,
        f"{spec.source}: smoke_test: {smoke['dataset']} has no column {smoke['target']!r}",
    )
    require(
        smoke["task_type"] in spec.task_types,
        f"{spec.source}: smoke_test: task type {smoke['task_type']!r} is not one of task_types {list(spec.task_types)}",
    )
    if run_estimator:
        check_estimator(
            cls,
            model_args=spec.default_config(),
            dataset=smoke["dataset"],
            target=smoke["target"],
            task_type=smoke["task_type"],
            metric=smoke["metric"],
            run_epochs=2 if spec.fidelity else None,
        )
