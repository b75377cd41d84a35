"""Search strategies behind OmniForce's SearchStrategy interface.

`bind_space` gives the strategy the search space, `generate_tasks` reserves trials with
their configurations, `handle_rewards` reports results (or how a trial ended: a
`TrialPruned` or `TrialFailed`) back, and `report` passes intermediate rewards for
multi-fidelity strategies, which may stop a task early. Every strategy is a sampler (and
a pruner) over an Optuna study, so the study in the shared storage stays the one source
of truth for any number of workers.

Installed packages add strategies through the `loopml.strategies` entry point group (the
entry point names a SearchStrategy subclass); `automl_tasks.testing.check_strategy` is
the contract a new strategy must pass.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from automl_tasks.core.errors import ConfigurationError, TrialEnded, TrialFailed, TrialPruned
from automl_tasks.core.plugins import installed_classes
from automl_tasks.core.tags import ERROR_TAG, FORBIDDEN_ATTR, ORIGIN_TAG, STRATEGIES_ENTRY_POINT_GROUP
from automl_tasks.search_space import ForbiddenConfiguration, SearchSpace

log = logging.getLogger(__name__)

GRID_POINTS = 5
MAX_FORBIDDEN_RETRIES = 100


@dataclass
class Task:
    """One reserved trial and the configuration to evaluate."""

    trial: Any  # optuna.Trial
    config: dict[str, Any]

    @property
    def number(self) -> int:
        return self.trial.number


class SearchStrategy(ABC):
    """A way of choosing the next configurations from the results so far."""

    name: ClassVar[str]
    description: ClassVar[str]
    multi_objective: ClassVar[bool] = False  # made for several objectives (not offered for one)
    #: its sampler (and pruner) accept a study with several objectives: a search that trades
    #: latency on the deployment target off against the score (issue #12) may use it
    several_objectives: ClassVar[bool] = False
    needs_fidelity: ClassVar[bool] = False  # expects intermediate rewards (epochs, rounds)

    def __init__(self, seed: int = 0, n_startup_trials: int = 10) -> None:
        self.seed = seed
        self.n_startup_trials = n_startup_trials
        self.space: SearchSpace | None = None

    def bind_space(self, space: SearchSpace) -> None:
        """Attach the space the strategy searches (a strategy may refuse a space it cannot search)."""
        self.space = space

    @abstractmethod
    def sampler(self) -> Any:  # optuna.samplers.BaseSampler
        """The Optuna sampler that proposes configurations."""

    def pruner(self) -> Any:  # optuna.pruners.BasePruner
        import optuna

        return optuna.pruners.NopPruner()

    def prepare(self, study: Any) -> int:
        """Seed the study before any worker starts (a grid enqueues its points); number enqueued."""
        return 0

    def generate_tasks(self, study: Any, n: int = 1) -> list[Task]:
        """Reserve `n` trials and draw their configurations; forbidden draws are pruned and redrawn."""
        from optuna.trial import TrialState

        if self.space is None:
            raise ConfigurationError(f"strategy {self.name}: bind_space() must be called first")
        tasks: list[Task] = []
        for _ in range(n):
            for _attempt in range(MAX_FORBIDDEN_RETRIES):
                trial = study.ask()
                try:
                    tasks.append(Task(trial, self.space.sample(trial)))
                    break
                except ForbiddenConfiguration as exc:
                    trial.set_user_attr(ERROR_TAG, str(exc))
                    trial.set_user_attr(FORBIDDEN_ATTR, True)
                    study.tell(trial, state=TrialState.PRUNED)
            else:
                raise ConfigurationError(
                    f"{MAX_FORBIDDEN_RETRIES} forbidden draws in a row: is the space all forbidden?"
                )
        return tasks

    def handle_rewards(
        self, study: Any, task: Task, values: float | Sequence[float] | None, ended: TrialEnded | None = None
    ) -> None:
        """Report a task's result: its score(s), or how it ended without one (`TrialPruned`:
        PRUNED; `TrialFailed`: FAIL, its message kept as the trial's error). A non-finite
        score fails the trial."""
        from optuna.trial import TrialState

        if values is not None and not all(math.isfinite(v) for v in _as_list(values)):
            values, ended = None, TrialFailed(f"the objective returned a non-finite value {values}")
            log.warning("trial %d failed: %s", task.number, ended)
        if values is not None:
            study.tell(task.trial, values)
            return
        if ended is not None and str(ended):  # why it ended without a score, for its MLflow run
            task.trial.set_user_attr(ERROR_TAG, str(ended)[:1000])
        study.tell(task.trial, state=TrialState.PRUNED if isinstance(ended, TrialPruned) else TrialState.FAIL)

    def report(self, task: Task, value: float, step: int) -> bool:
        """Record an intermediate reward at fidelity `step` (or a fold's score); True means
        stop this task now. A study of several objectives records none (Optuna's
        `Trial.report` takes one objective) and never stops a task."""
        if len(task.trial.study.directions) > 1:
            return False
        task.trial.report(value, step)
        return task.trial.should_prune()


def _as_list(values: float | Sequence[float]) -> list[float]:
    return [float(values)] if isinstance(values, int | float) else [float(v) for v in values]


class RandomStrategy(SearchStrategy):
    name, description = "random", "independent uniform draws (the baseline)"
    several_objectives = True

    def sampler(self):
        import optuna

        return optuna.samplers.RandomSampler(seed=self.seed)


class GridStrategy(RandomStrategy):
    name, description = "grid", f"every point of the space ({GRID_POINTS} values per numeric range); small spaces only"
    limit: ClassVar[int] = 2_000

    def bind_space(self, space: SearchSpace) -> None:
        super().bind_space(space)
        self.points = space.grid(GRID_POINTS, limit=self.limit)  # raises for large spaces

    def prepare(self, study: Any) -> int:
        for config in self.points:
            study.enqueue_trial(config, user_attrs={ORIGIN_TAG: "grid"}, skip_if_exists=True)
        log.info("grid: %d points enqueued", len(self.points))
        return len(self.points)


class TPEStrategy(SearchStrategy):
    name = "tpe"
    description = "multivariate TPE grouped by the space's conditional branches, constant liar for parallel workers"
    several_objectives = True  # multi-objective TPE

    def sampler(self):
        import optuna

        return optuna.samplers.TPESampler(
            seed=self.seed,
            multivariate=True,
            group=True,
            constant_liar=True,
            n_startup_trials=self.n_startup_trials,
        )


class GPStrategy(SearchStrategy):
    name, description = "gp", "Gaussian-process Bayesian optimisation (Optuna's GPSampler); best for small budgets"
    several_objectives = True  # log expected hypervolume improvement

    def sampler(self):
        import optuna

        return optuna.samplers.GPSampler(seed=self.seed, n_startup_trials=self.n_startup_trials)


class CmaEsStrategy(SearchStrategy):
    name, description = "cmaes", "CMA-ES on numeric parameters (categorical ones drawn by TPE)"

    def sampler(self):
        import optuna

        return optuna.samplers.CmaEsSampler(
            seed=self.seed,
            n_startup_trials=self.n_startup_trials,
            independent_sampler=optuna.samplers.TPESampler(seed=self.seed),
            warn_independent_sampling=False,
        )


class NSGA2Strategy(SearchStrategy):
    name, description = "nsga2", "NSGA-II genetic search; the strategy for several objectives"
    multi_objective = several_objectives = True

    def sampler(self):
        import optuna

        return optuna.samplers.NSGAIISampler(seed=self.seed, population_size=max(8, self.n_startup_trials))


class HyperbandStrategy(TPEStrategy):
    name, description = "hyperband", "TPE proposals, Hyperband stops poor trials early on intermediate rewards"
    needs_fidelity = True
    several_objectives = False  # Optuna's pruners compare one objective (Trial.report refuses several)

    def __init__(self, seed: int = 0, n_startup_trials: int = 10, min_resource: int = 1, max_resource: int = 27):
        super().__init__(seed, n_startup_trials)
        self.min_resource, self.max_resource = min_resource, max_resource

    def pruner(self):
        import optuna

        return optuna.pruners.HyperbandPruner(
            min_resource=self.min_resource, max_resource=self.max_resource, reduction_factor=3
        )


class ASHAStrategy(HyperbandStrategy):
    name, description = "asha", "TPE proposals, asynchronous successive halving on intermediate rewards"

    def pruner(self):
        import optuna

        return optuna.pruners.SuccessiveHalvingPruner(min_resource=self.min_resource, reduction_factor=3)


BUILTIN_STRATEGIES: dict[str, type[SearchStrategy]] = {
    cls.name: cls
    for cls in (
        RandomStrategy,
        GridStrategy,
        TPEStrategy,
        GPStrategy,
        CmaEsStrategy,
        NSGA2Strategy,
        HyperbandStrategy,
        ASHAStrategy,
    )
}


def installed_strategies() -> dict[str, type[SearchStrategy]]:
    """Strategies of installed packages (entry point group `loopml.strategies` -> a class)."""
    return installed_classes(STRATEGIES_ENTRY_POINT_GROUP, SearchStrategy, BUILTIN_STRATEGIES, "strategy")


#: every strategy a search can use, by name: the built-in ones and the installed ones
STRATEGIES: dict[str, type[SearchStrategy]] = {**BUILTIN_STRATEGIES, **installed_strategies()}


def make_strategy(name: str, *, seed: int = 0, space: SearchSpace | None = None, **options: Any) -> SearchStrategy:
    """The strategy called `name`, bound to `space` when given."""
    if name not in STRATEGIES:
        raise ConfigurationError(f"unknown search strategy {name!r}; expected one of {sorted(STRATEGIES)}")
    strategy = STRATEGIES[name](seed=seed, **options)
    if space is not None:
        strategy.bind_space(space)
    return strategy
