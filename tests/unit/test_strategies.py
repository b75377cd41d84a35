"""Every search strategy through one contract: beat random search on a hard cheap function."""

from __future__ import annotations

import math
import statistics

import pytest

from automl_tasks.core.errors import ConfigurationError, SearchSpaceError
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


def value(config):
    bonus = 0.2 * config.get("bonus.some.amount", 0.0)
    return bonus - (config["x"] - 0.4) ** 2 - (config["y"] + 0.4) ** 2


def objective(config, report):
    return value(config)


# The contract: a strategy must find a tight optimum of a 4-dimensional function (with a
# conditional branch) in a budget where pure random search usually does not. The old
# 2-D contract passed for random search 98.6% of the time; this one is failed by random
# search itself (test_the_contract_fails_random_search) and by a strategy no better than it.
HARD_SPACE = load_search_space(
    """
params:
  - {name: x1, type: float, range: [-5, 5]}
  - {name: x2, type: float, range: [-5, 5]}
  - {name: x3, type: float, range: [-5, 5]}
  - {name: x4, type: float, range: [-5, 5]}
  - name: bonus
    type: string
    range: [none, some]
    submodule:
      some: [{name: amount, type: float, range: [0, 1]}]
"""
)
HARD_OPTIMUM = (1.3, -2.1, 0.7, 3.2)  # value 0.5 there, with bonus = some, amount = 1
BUDGET = 30  # trials per search, the first 10 drawn at random by every model-based strategy
SEEDS = (0, 1, 2)  # fixed: the test is deterministic, not flaky
RANDOM_RUNS = 60  # random search's distribution of best values, for the bar
BAR_QUANTILE = 0.9  # a strategy's median best must beat 9 random searches in 10


def hard_value(config):
    distance = sum((config[f"x{i + 1}"] - c) ** 2 for i, c in enumerate(HARD_OPTIMUM))
    return 0.5 * config.get("bonus.some.amount", 0.0) - distance


def hard_objective(config, report):
    return hard_value(config)


def hard_fidelity_objective(config, report):
    """Reward grows with the step towards `hard_value`; poor configurations are visible early."""
    for step in range(1, 28):
        current = hard_value(config) - 2.0 / step
        report(current, step)
    return current


def best_found(name: str, seed: int) -> float:
    """The best `hard_value` among the completed trials of one search."""
    strategy = make_strategy(name, seed=seed, n_startup_trials=10)
    fn = hard_fidelity_objective if strategy.needs_fidelity else hard_objective
    # a fixed study name: Hyperband assigns trials to brackets by a hash of the study's name,
    # and an unnamed study gets a random one (the median varied from run to run without it)
    study = optimize(fn, HARD_SPACE, strategy, n_trials=BUDGET, study_name=f"hard-{name}-{seed}")
    assert len([t for t in study.trials if t.state.is_finished()]) >= BUDGET
    if strategy.needs_fidelity:
        assert [t for t in study.trials if t.state.name == "PRUNED"], f"{name} stopped no trial early"
    return max(hard_value(t.params) for t in study.trials if t.state.name == "COMPLETE")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """GPSampler's small torch fits run 6x slower when torch spreads them over busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def random_bar() -> float:
    """The best value that random search reaches in 9 runs out of 10 (seeds apart from SEEDS)."""
    bests = sorted(best_found("random", 1000 + seed) for seed in range(RANDOM_RUNS))
    return bests[int(BAR_QUANTILE * RANDOM_RUNS)]


def beats_random(name: str, bar: float) -> tuple[bool, list[float]]:
    bests = [best_found(name, seed) for seed in SEEDS]
    return statistics.median(bests) > bar, bests


SEARCHING = sorted(
    name for name, cls in STRATEGIES.items() if not cls.multi_objective and name not in ("random", "grid")
)


@pytest.mark.parametrize("name", SEARCHING)
def test_strategy_beats_random_search_on_a_hard_function(name, random_bar):
    ok, bests = beats_random(name, random_bar)
    assert ok, f"{name}: median best {statistics.median(bests):.3f} of {bests} not above random's bar {random_bar:.3f}"


def test_the_contract_fails_random_search(random_bar):
    """The contract can fail: random search itself (other seeds than the bar's) does not pass it."""
    ok, bests = beats_random("random", random_bar)
    assert not ok, f"random search passed the strategy contract: {bests} vs bar {random_bar:.3f}"


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
        optimize(objective, SPACE, make_strategy("cmaes"), n_trials=2, directions=("minimize", "minimize"))


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
    from automl_tasks.search.formatter import GP_MAX_TRIALS
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
    assert choose_strategy("auto", flat, GP_MAX_TRIALS)[0] == "gp"  # NAS-Bench-201's 80 evaluations
    assert choose_strategy("auto", flat, GP_MAX_TRIALS + 10)[0] == "tpe"
    assert choose_strategy("auto", flat, 200)[0] == "cmaes"
    assert choose_strategy("auto", flat, 60, fidelity=True)[0] == "hyperband"
    assert choose_strategy("random", tabular, 40) == ("random", "chosen in the trigger form")
    with pytest.raises(ConfigurationError, match="needs intermediate rewards"):
        choose_strategy("asha", tabular, 40)
    with pytest.raises(SearchSpaceError, match="more than 2000"):
        choose_strategy("grid", tabular, 40)
