"""Fit a search space to its time budget: leave out model choices too slow to search.

On a 30 s budget a single torch-MLP trial took 16-19 s on 1.5k-4.4k rows (issue #11): one
or two of them ate the whole search. A model choice listed in `SLOW_MODELS` stays in the
space only when `MIN_TRIALS_OF_SLOW_MODEL` of its trials fit in the time budget, by a
conservative estimate of one trial's seconds (linear in rows and in the evaluations a
trial makes: one holdout fit, or one fit per cross-validation fold). The rule is pure
(no timing is measured here) so that the same table and budget always give the same space.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

#: model choice -> estimated seconds of one fit per 1,000 table rows with its default
#: configuration on one core (torch MLP, 60 epochs: ~4 s per 1k rows seen on the 2-core machine)
SLOW_MODELS: Mapping[str, float] = {"mlp": 4.0}
#: a slow model stays only when this many of its trials fit in the time budget
MIN_TRIALS_OF_SLOW_MODEL = 10
#: the categorical parameter that picks the model
MODEL_PARAM = "model"


@dataclass(frozen=True)
class BudgetFit:
    """The space to search (YAML text) and what was left out, with why (empty: nothing)."""

    space_text: str
    dropped: tuple[str, ...]
    reason: str


def estimated_trial_s(model: str, rows: int, evaluations: int) -> float:
    """Seconds one trial of a slow `model` is expected to take on `rows` rows."""
    return SLOW_MODELS[model] * rows / 1000.0 * max(1, evaluations)


def fit_space_to_budget(space_text: str, *, rows: int, time_budget_s: float, evaluations: int) -> BudgetFit:
    """Drop the slow model choices of which fewer than `MIN_TRIALS_OF_SLOW_MODEL` trials fit
    in `time_budget_s`; never the space's default model nor its last choice."""
    from automl_tasks.core.errors import SearchSpaceError
    from automl_tasks.search_space.language import load_search_space

    space = load_search_space(space_text)
    param = space.find(MODEL_PARAM)
    if param is None or param.type != "string":
        return BudgetFit(space_text, (), "")
    choices = list(param.range)
    too_slow = []
    for model in choices:
        if model not in SLOW_MODELS or model == param.default_value():
            continue
        trial_s = estimated_trial_s(model, rows, evaluations)
        if trial_s * MIN_TRIALS_OF_SLOW_MODEL > time_budget_s:
            too_slow.append((model, trial_s))
    too_slow = too_slow[: len(choices) - 1]
    if not too_slow:
        return BudgetFit(space_text, (), "")
    document = copy.deepcopy(dict(space.source))
    dropped = {m for m, _ in too_slow}
    _drop_choices(document["params"], dropped)
    reason = "; ".join(
        f"left out model {m!r}: ~{s:.0f}s a trial on {rows:,} rows x {evaluations} evaluation(s), "
        f"fewer than {MIN_TRIALS_OF_SLOW_MODEL} trials fit in the {time_budget_s:.0f}s budget"
        for m, s in too_slow
    )
    text = yaml.safe_dump(document, sort_keys=False)
    try:
        load_search_space(text)  # a condition or forbidden pair may name a dropped branch
    except SearchSpaceError:
        return BudgetFit(space_text, (), "")
    return BudgetFit(text, tuple(sorted(dropped)), reason)


def _drop_choices(params: list[dict[str, Any]], dropped: set[str]) -> None:
    for raw in params:
        if raw.get("name") != MODEL_PARAM:
            continue
        raw["range"] = [c for c in raw["range"] if c not in dropped]
        if isinstance(raw.get("submodule"), dict):
            raw["submodule"] = {k: v for k, v in raw["submodule"].items() if k not in dropped}
