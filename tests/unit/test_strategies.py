"""Every search strategy through one contract: find the optimum region of a cheap function."""

from __future__ import annotations

import math

import pytest

from automl_tasks.errors import ConfigurationError, SearchSpaceError
from automl_tasks.search.engine import optimize
from automl_tasks.search.strategies import STRATEGIES, make_strategy
from automl_tasks.search_space import load_search_space

SPACE = load_search_space(
    """
params:
  - {name: x, type: float, range: [-2, 2]}
  - {name: y, type: float, range: [-2, 2]}
  - name: bonus
    type: string
    range: [none, some]
    submodule:
      some: [{name: amount, type: float, range: [0, 1]}]
"""
)
OPTIMUM = 0.2  # x = 0.4, y = -0.4, bonus = some, amount = 1
REGION = 0.5  # "found the optimum region": within this of the optimum


def value(config):
    bonus = 0.2 * config.get("bonus.some.amount", 0.0)
    return bonus - (config["x"] - 0.4) ** 2 - (config["y"] + 0.4) ** 2


def objective(config, report):
    return value(config)


def fidelity_objective(config, report):
    """Reward grows with the step towards `value`; poor configurations are visible early."""
    for step in range(1, 28):
        current = value(config) - 2.0 / step
        report(current, step)
    return current


SINGLE = sorted(name for name, cls in STRATEGIES.items() if not cls.multi_objective)


@pytest.mark.parametrize("name", SINGLE)
def test_strategy_finds_the_optimum_region(name):
    strategy = make_strategy(name, seed=3, n_startup_trials=10)
    fn = fidelity_objective if strategy.needs_fidelity else objective
    budget = max(60, len(SPACE.grid(5))) if name == "grid" else 60  # a grid's budget is its size
    study = optimize(fn, SPACE, strategy, n_trials=budget, n_workers=2)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) >= budget
    best = value(study.best_params)  # fidelity objectives report a lower value at their last step
    assert best >= OPTIMUM - REGION, f"{name}: best {best:.3f} with {study.best_params}"
    if strategy.needs_fidelity:
        pruned = [t for t in study.trials if t.state.name == "PRUNED"]
        assert pruned, f"{name} stopped no trial early"


def test_nsga2_finds_both_ends_of_a_pareto_front():
    def two_objectives(config, report):
        x, y = config["x"], config["y"]
        return (x - 1) ** 2 + (y + 1) ** 2, (x + 1) ** 2 + (y - 1) ** 2

    study = optimize(
        two_objectives, SPACE, make_strategy("nsga2", seed=1), n_trials=120, directions=("minimize", "minimize")
    )
    front = study.best_trials
    assert min(t.values[0] for t in front) < 0.5 and min(t.values[1] for t in front) < 0.5
    assert len(front) >= 5
    for t in front:  # every Pareto point lies near the segment between the two optima
        assert math.sqrt(t.values[0]) + math.sqrt(t.values[1]) < 2 * math.sqrt(8) * 0.5 + 1.0


def test_grid_covers_every_point_and_refuses_large_spaces():
    strategy = make_strategy("grid", space=SPACE)
    assert len(strategy.points) == 5 * 5 * (1 + 5)
    study = optimize(objective, SPACE, make_strategy("grid"), n_trials=len(strategy.points))
    seen = {tuple(sorted(t.params.items())) for t in study.trials}
    assert seen == {tuple(sorted(c.items())) for c in strategy.points}
    big = load_search_space("params: [{name: a, type: int, range: [0, 10]}, {name: b, type: int, range: [0, 10]}]")
    make_strategy("grid", space=big)  # 25 points: fine
    huge = load_search_space(
        "params: [" + ", ".join(f"{{name: p{i}, type: float, range: [0, 1]}}" for i in range(6)) + "]"
    )
    with pytest.raises(SearchSpaceError, match="more than 2000 configurations"):
        make_strategy("grid", space=huge)


def test_unknown_strategy_and_single_objective_misuse_are_refused():
    with pytest.raises(ConfigurationError, match="unknown search strategy 'annealing'"):
        make_strategy("annealing")
    with pytest.raises(ValueError, match="optimises one objective"):
        optimize(objective, SPACE, make_strategy("tpe"), n_trials=2, directions=("minimize", "minimize"))


def test_a_failing_configuration_fails_its_trial_not_the_search():
    def flaky(config, report):
        if config["x"] < 0:
            raise RuntimeError("diverged")
        return value(config)

    study = optimize(flaky, SPACE, make_strategy("random", seed=0), n_trials=20)
    states = {t.state.name for t in study.trials}
    assert states == {"COMPLETE", "FAIL"}
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert all("diverged" in t.user_attrs["loopml.error"] for t in failed)


def test_the_formatter_picks_a_strategy_from_the_space_and_budget_and_says_why():
    from automl_tasks.search import choose_strategy
    from automl_tasks.search_space import DEFAULT_TABULAR_SPACE

    tabular = load_search_space(DEFAULT_TABULAR_SPACE.read_text())
    name, why = choose_strategy("auto", tabular, 40, {"rows": 569, "columns": 31})
    assert name == "tpe" and "conditional" in why
    tiny = load_search_space(
        "params: [{name: a, type: string, range: [x, y]}, {name: b, type: int_cat, range: [1, 2, 3]}]"
    )
    assert choose_strategy("auto", tiny, 10)[0] == "grid"
    flat = load_search_space(
        "params: [" + ", ".join(f"{{name: p{i}, type: float, range: [0, 1]}}" for i in range(4)) + "]"
    )
    assert choose_strategy("auto", flat, 30)[0] == "gp"
    assert choose_strategy("auto", flat, 200)[0] == "cmaes"
    assert choose_strategy("auto", flat, 60, fidelity=True)[0] == "hyperband"
    assert choose_strategy("random", tabular, 40) == ("random", "chosen in the trigger form")
    with pytest.raises(ConfigurationError, match="needs intermediate rewards"):
        choose_strategy("asha", tabular, 40)
    with pytest.raises(SearchSpaceError, match="more than 2000"):
        choose_strategy("grid", tabular, 40)
