"""`check_strategy`: the contract of `automl_tasks.search.strategies.SearchStrategy`."""

from __future__ import annotations

import inspect
from typing import Any

from automl_tasks.testing._common import require

#: a small space with every kind of parameter and a conditional branch
SPACE_YAML = """
params:
  - {name: x, type: float, range: [-2, 2], default: 0.0}
  - {name: n, type: int, range: [1, 8], default: 4}
  - name: kind
    type: string
    range: [plain, boosted]
    submodule:
      boosted: [{name: rate, type: float_log, range: [0.01, 1.0], default: 0.1}]
"""
TRIALS = 12


def _objective(config: dict[str, Any], report: Any) -> float:
    value = -((config["x"] - 0.5) ** 2) - 0.01 * config["n"] + 0.1 * config.get("kind.boosted.rate", 0.0)
    for step in (1, 2, 3):  # intermediate rewards, for multi-fidelity strategies
        report(value - 0.1 / step, step)
    return value


def check_strategy(cls: type, *, trials: int = TRIALS, **options: Any) -> None:
    """Check that `cls` can drive a loopml search (built with `seed=` and `options`).

    Raises AssertionError naming the first broken rule:

    - a concrete subclass of SearchStrategy with a non-empty `name` and `description`;
    - `sampler()` and `pruner()` return an Optuna sampler and pruner;
    - a search of `trials` trials on a small conditional space finishes every trial, draws
      only configurations of the space, and completes at least one;
    - the same seed draws the same configurations (searches can be re-run);
    - `handle_rewards` records a score as COMPLETE, `TrialPruned` as PRUNED, `TrialFailed`
      as FAIL with its message, and a non-finite score as FAIL;
    - a strategy that says `multi_objective` searches two objectives.
    """
    import optuna

    from automl_tasks.search.strategies import SearchStrategy

    require(isinstance(cls, type) and issubclass(cls, SearchStrategy), f"{cls!r} is not a subclass of SearchStrategy")
    require(
        not inspect.isabstract(cls),
        f"{cls.__name__} leaves abstract methods unimplemented: {sorted(cls.__abstractmethods__)}",
    )
    for attribute in ("name", "description"):
        value = getattr(cls, attribute, None)
        require(isinstance(value, str) and value.strip(), f"{cls.__name__}.{attribute} must be a non-empty string")
    strategy = cls(seed=0, **options)
    require(
        isinstance(strategy.sampler(), optuna.samplers.BaseSampler),
        f"{cls.__name__}.sampler() must return an optuna.samplers.BaseSampler",
    )
    require(
        isinstance(strategy.pruner(), optuna.pruners.BasePruner),
        f"{cls.__name__}.pruner() must return an optuna.pruners.BasePruner",
    )
    first = _search(cls, options, trials)
    _check_trials(cls, first, trials)
    again = _search(cls, options, trials)
    require(
        [t.params for t in again.trials] == [t.params for t in first.trials],
        f"{cls.__name__}: two searches with seed 0 drew different configurations; seed every random choice",
    )
    _check_rewards(cls, options)
    if cls.multi_objective:
        two = _search(cls, options, trials, directions=("maximize", "minimize"))
        require(
            any(t.state.name == "COMPLETE" for t in two.trials),
            f"{cls.__name__} says multi_objective but completed no trial of a two-objective search",
        )


def _search(cls: type, options: dict[str, Any], trials: int, directions: tuple[str, ...] = ("maximize",)) -> Any:
    from automl_tasks.search.engine import optimize
    from automl_tasks.search_space import load_search_space

    if len(directions) > 1:

        def objective(config, report):
            return _objective(config, lambda *_: None), float(config["n"])
    else:
        objective = _objective
    return optimize(
        objective, load_search_space(SPACE_YAML), cls(seed=0, **options), n_trials=trials, directions=directions
    )


def _check_trials(cls: type, study: Any, trials: int) -> None:
    from automl_tasks.search_space import load_search_space

    space = load_search_space(SPACE_YAML)
    require(len(study.trials) >= trials, f"{cls.__name__}: a {trials}-trial search ran {len(study.trials)} trials")
    running = [t.number for t in study.trials if t.state.name == "RUNNING"]
    require(not running, f"{cls.__name__}: trials {running[:10]} were started and never finished")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    require(complete, f"{cls.__name__}: no trial of {len(study.trials)} completed")
    names = set(space.names())
    for trial in complete:
        unknown = set(trial.params) - names
        require(
            not unknown, f"{cls.__name__}: trial {trial.number} drew parameters {sorted(unknown)} outside the space"
        )
        for name, value in trial.params.items():
            param = space.find(name)
            if param is not None and param.is_numeric:
                low, high = min(param.range), max(param.range)
                require(
                    low <= value <= high,
                    f"{cls.__name__}: trial {trial.number} drew {name}={value}, outside [{low}, {high}]",
                )


def _check_rewards(cls: type, options: dict[str, Any]) -> None:
    import optuna

    from automl_tasks.core.errors import TrialFailed, TrialPruned
    from automl_tasks.core.tags import ERROR_TAG
    from automl_tasks.search_space import load_search_space

    strategy = cls(seed=0, **options)
    strategy.bind_space(load_search_space(SPACE_YAML))
    study = optuna.create_study(direction="maximize", sampler=strategy.sampler(), pruner=strategy.pruner())
    strategy.prepare(study)
    outcomes = [(1.0, None, "COMPLETE"), (None, TrialPruned("stopped"), "PRUNED"), (None, TrialFailed("boom"), "FAIL")]
    outcomes.append((float("nan"), None, "FAIL"))
    for values, ended, state in outcomes:
        task = strategy.generate_tasks(study, 1)[0]
        strategy.handle_rewards(study, task, values, ended)
        got = study.trials[task.number]
        require(
            got.state.name == state,
            f"{cls.__name__}.handle_rewards({values}, {ended!r}) left the trial {got.state.name}; expected {state}",
        )
        if isinstance(ended, TrialFailed):
            require(
                got.user_attrs.get(ERROR_TAG) == "boom",
                f"{cls.__name__}.handle_rewards must keep a failed trial's reason in the {ERROR_TAG!r} user attribute",
            )
