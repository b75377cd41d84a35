"""Which trials count against a search's trial budget, and a worker's cheap view of it.

A worker consults the stop flag, the deadline and the trial budget before every trial.
Reading them fresh each time cost a zero-length trial five listings of the study and three
reads of its attributes (about a third of the worker's bookkeeping, issue #16). `BudgetView`
reads the study's attributes at most once a `FLAGS_EVERY_S`, takes the clock's start once
(it never changes after the first worker set it), and counts trials on the listing Optuna's
sampler made while reserving the last trial; it lists the study afresh only before
concluding that the budget is full, so a stale view never stops, parks or turns back a worker.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from automl_tasks.core.tags import DEAD_TRIALS_ATTR, FORBIDDEN_ATTR, OVER_BUDGET_ATTR, STOP_ATTR

#: how old a worker's copy of the study's attributes (stop flag, trials lost to dead workers) may be
FLAGS_EVERY_S = 1.0
#: why a worker stops when the time left is shorter than any trial it could start
NO_TRIAL_FITS = "no trial is expected to finish within the time budget"


def lost_trials(attrs: dict[str, Any]) -> set[int]:
    """Numbers of the trials lost to dead workers, from the study's user attributes."""
    return set(attrs.get(DEAD_TRIALS_ATTR, []))


def read_lost_trials(study: Any) -> set[int]:
    """Numbers of the trials lost to dead workers, read fresh from the storage."""
    return lost_trials(study._storage.get_study_user_attrs(study._study_id))


def is_search_trial(trial: Any) -> bool:
    """False for a draw the space forbids and a trial given back unevaluated: neither ran."""
    return not trial.user_attrs.get(FORBIDDEN_ATTR) and not trial.user_attrs.get(OVER_BUDGET_ATTR)


def counted(trials: Iterable[Any], lost: set[int], states: Iterable[Any]) -> list:
    """Trials of `states` that count against the budget: not lost to a dead worker, not a
    draw the space forbids, not given back because the budget filled meanwhile.

    Hand-written rather than Optuna's `MaxTrialsCallback`: that callback calls
    `Study.stop()`, which works only inside `Study.optimize` (loopml uses ask/tell across
    processes, with a stop flag in the storage), and it counts trials by state alone, so it
    cannot leave out forbidden draws and trials lost to dead workers."""
    states = set(states)
    return [t for t in trials if t.state in states and t.number not in lost and is_search_trial(t)]


class BudgetView:
    """A worker's view of the study's stop flag, deadline and trial budget."""

    def __init__(
        self,
        study: Any,
        plan: Any,
        started: float,
        flags_every_s: float = FLAGS_EVERY_S,
        family_params: tuple[str, ...] = (),
    ) -> None:
        """`family_params`: the space's branch parameters (`branch_params`), whose values name
        the kind of trial a configuration is (the tabular `model`, an adaptation's `method`)."""
        self._study, self._plan = study, plan
        self._family_params = family_params
        self.deadline = started + plan.time_budget_s
        self._every = flags_every_s
        self._attrs: dict[str, Any] = {}
        self._read_at = -math.inf
        self._trials: list | None = None  # the last listing seen (the study's trials then)

    def _flags(self, fresh: bool = False) -> dict[str, Any]:
        if fresh or time.monotonic() - self._read_at >= self._every:
            self._attrs = self._study._storage.get_study_user_attrs(self._study._study_id)
            self._read_at = time.monotonic()
        return self._attrs

    def stop_reason(self) -> str | None:
        """The stop flag (at most `flags_every_s` old)."""
        return self._flags().get(STOP_ATTR)

    def _budgeted(self, fresh: bool) -> list:
        from optuna.trial import TrialState

        if fresh or self._trials is None:
            self._trials = self._study.get_trials(deepcopy=False)
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
        return counted(self._trials, lost_trials(self._flags(fresh)), states)

    def state(self) -> str:
        """ "open" (a trial may start), "wait" (the budget is full only because other workers'
        trials still run) or "spent" (no more trials or time).

        "wait": one of those trials may yet be lost to a dead worker, failed and retried (the
        job estimator enqueues the retry), and then a live worker must run it: a worker that
        left would strand it."""
        if time.time() >= self.deadline:
            return "spent"
        verdict = self._state(self._budgeted(fresh=False))
        return verdict if verdict == "open" else self._state(self._budgeted(fresh=True))

    def _state(self, budgeted: list) -> str:
        from optuna.trial import TrialState

        if len(budgeted) < self._plan.n_trials:
            return "open"
        running = sum(t.state == TrialState.RUNNING for t in budgeted)
        return "wait" if running and len(budgeted) - running < self._plan.n_trials else "spent"

    def over_budget(self, number: int) -> bool:
        """Whether trial `number` was reserved after the budget filled up: two workers that
        check the budget at the same instant can both reserve a trial; the later one gives it
        back. Judged on the listing made while reserving it, confirmed afresh."""

        def over(budgeted: list) -> bool:
            return sum(t.number < number for t in budgeted) >= self._plan.n_trials

        # the listing Optuna's sampler made while reserving the trial (Study's own cache for
        # the trial being asked; it lists afresh when the sampler made none)
        self._trials = self._study._get_trials(deepcopy=False, use_cache=True)
        return over(self._budgeted(fresh=False)) and over(self._budgeted(fresh=True))

    def finished(self) -> int:
        """How many trials had finished at the last listing (for progress lines)."""
        return sum(t.state.is_finished() for t in self._trials or ())

    def _family(self, config: Mapping[str, Any]) -> tuple:
        return family_of(config, self._family_params)

    def _typical_seconds(self) -> dict[tuple, float]:
        """Per family of trials (the values of the branch parameters; one family in a space
        without any), the median length of its completed trials in the last listing."""
        from optuna.trial import TrialState

        lengths: dict[tuple, list[float]] = {}
        for t in self._trials or ():
            if t.state == TrialState.COMPLETE and t.datetime_start and t.datetime_complete and is_search_trial(t):
                seconds = (t.datetime_complete - t.datetime_start).total_seconds()
                lengths.setdefault(self._family(t.params), []).append(seconds)
        return {family: float(statistics.median(values)) for family, values in lengths.items()}

    def finishes_in_time(self, config: Mapping[str, Any]) -> tuple[bool, float | None]:
        """(whether a trial of `config` is expected to end before the deadline, the seconds
        expected): its family's median length so far; a family with no completed trial yet
        gets its chance (a smoke test's methods are each tried). Judged on the listing made
        while reserving the trial (`over_budget`).

        Why: a trial started a few seconds before the deadline ran past it by its whole length
        (CV trials: 3-6 s over a 30 s budget), and the search's end waits for it."""
        expected = self._typical_seconds().get(self._family(config))
        return expected is None or time.time() + expected <= self.deadline, expected

    def any_trial_fits(self) -> bool:
        """Whether the quickest family's median trial still ends before the deadline."""
        typical = self._typical_seconds()
        return not typical or time.time() + min(typical.values()) <= self.deadline


def branch_params(space: Any) -> tuple[str, ...]:
    """The space's top-level parameters that open branches of their own parameters (the
    tabular `model`, an adaptation's `method`): their values name a family of trials."""
    return tuple(p.name for p in space.params if p.children)


def plan_branch_params(plan: Any) -> tuple[str, ...]:
    """`branch_params` of a plan's search space."""
    from automl_tasks.search_space import load_search_space

    return branch_params(load_search_space(plan.space_yaml))


def family_of(config: Mapping[str, Any], family_params: Sequence[str]) -> tuple:
    """A configuration's family of trials: the values of the space's branch parameters. The
    one definition the trial-length model, the fold race and ensemble selection share."""
    return tuple(config.get(name) for name in family_params)
