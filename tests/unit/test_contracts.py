"""The shipped contract checks (automl_tasks.testing): every built-in passes its check, and
a deliberately broken example of each extension point fails it with a clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from automl_tasks.algorithms.registry import BUILTIN
from automl_tasks.core.errors import TrialPruned
from automl_tasks.monitoring.drift import DriftCheck, DriftMeasurement, EvidentlyDriftCheck, measure_drift
from automl_tasks.search.strategies import BUILTIN_STRATEGIES, RandomStrategy
from automl_tasks.testing import check_algorithm_spec, check_drift_check, check_estimator, check_strategy

REPO = Path(__file__).resolve().parents[2]
GOOD_ALGORITHMS = sorted(
    p.name for p in BUILTIN.iterdir() if (p / "algorithm.yaml").exists() and "broken" not in p.name
)


def test_there_are_built_ins_to_check():
    assert GOOD_ALGORITHMS == ["digits_cnn", "tabular"]


@pytest.mark.parametrize("name", GOOD_ALGORITHMS)
def test_every_built_in_algorithm_passes_its_contract(name):
    check_algorithm_spec(BUILTIN / name)  # runs check_estimator on its class too


def test_the_broken_example_algorithm_fails_the_estimator_contract():
    with pytest.raises(
        AssertionError, match=r"DivergingEstimator: a search trial scored nan; the score must be a finite"
    ):
        check_algorithm_spec(BUILTIN / "broken_example")


def test_a_spec_whose_defaults_are_not_in_its_space_fails(tmp_path):
    spec = (BUILTIN / "broken_example" / "algorithm.yaml").read_text()
    (tmp_path / "algorithm.yaml").write_text(spec + "defaults: {step_size: 10.0, learning_rate: 0.1}\n")
    with pytest.raises(AssertionError, match=r"defaults: \['learning_rate'\] are not parameters of the search space"):
        check_algorithm_spec(tmp_path, run_estimator=False)


def test_a_spec_naming_a_class_that_is_not_an_estimator_fails(tmp_path):
    spec = (BUILTIN / "broken_example" / "algorithm.yaml").read_text()
    spec = spec.replace("automl_tasks.algorithms.builtin.broken_example.estimator:DivergingEstimator", "pathlib:Path")
    (tmp_path / "algorithm.yaml").write_text(spec)
    with pytest.raises(AssertionError, match="'pathlib:Path' is not an Estimator subclass"):
        check_algorithm_spec(tmp_path)


def test_an_estimator_that_saves_nothing_fails():
    from tests.sleepy_estimator import SleepyEstimator

    with pytest.raises(AssertionError, match="SleepyEstimator: the final trainer's run.. raised NotImplementedError"):
        check_estimator(SleepyEstimator, model_args={"x": 0.3, "sleep_s": 0.0})


def test_an_estimator_that_is_told_to_stop_and_trains_on_fails():
    from tests.sleepy_estimator import EpochEstimator

    class StopIgnoringEstimator(EpochEstimator):
        def train(self) -> None:
            for epoch in range(1, 4):
                try:
                    self.report(0.5, epoch)
                except TrialPruned:
                    pass  # the bug: trains on after the search said stop

    with pytest.raises(AssertionError, match="was told to stop and went on"):
        check_estimator(StopIgnoringEstimator, model_args={"x": 0.3, "sleep_s": 0.0})


def test_a_stop_at_the_last_epoch_is_not_obeyed_so_a_finished_trial_keeps_its_score():
    from tests.sleepy_estimator import EpochEstimator

    def always_stop(value: float, step: int) -> bool:
        steps.append(step)
        return True

    for epochs, pruned_at in ((3, [1]), (1, None)):
        steps: list[int] = []
        estimator = EpochEstimator(run_epochs=epochs, data=None, is_trainer=False, model_args={"x": 0.3}, metric=None)
        estimator.reporter = always_stop
        if pruned_at is None:
            assert estimator.run().score == pytest.approx(0.0)  # told to stop at its only (last) epoch
            assert steps == [1]
        else:
            with pytest.raises(TrialPruned, match="at step 1"):
                estimator.run()
            assert steps == pruned_at


@pytest.mark.parametrize("name", sorted(BUILTIN_STRATEGIES))
def test_every_built_in_strategy_passes_its_contract(name):
    check_strategy(BUILTIN_STRATEGIES[name])


class UnseededStrategy(RandomStrategy):
    """Broken: ignores its seed, so a search cannot be re-run."""

    name, description = "unseeded", "random draws without a seed"

    def sampler(self):
        return optuna.samplers.RandomSampler()


def test_a_strategy_that_ignores_its_seed_fails():
    with pytest.raises(AssertionError, match="two searches with seed 0 drew different configurations"):
        check_strategy(UnseededStrategy)


def test_the_evidently_drift_check_passes_its_contract():
    check_drift_check(EvidentlyDriftCheck)


class AlarmistDriftCheck(DriftCheck):
    """Broken: calls every window drifted."""

    name = "alarmist"

    def measure(self, reference, current, schema, **options) -> DriftMeasurement:
        found = measure_drift(reference, current, schema, **options)
        columns = [type(c)(c.column, c.method, c.score, c.threshold, True) for c in found.columns]
        return type(found)(**{**found.__dict__, "columns": columns, "share_drifted": 1.0, "data_drift": True})


def test_a_drift_check_that_always_alarms_fails():
    with pytest.raises(AssertionError, match="two samples of one distribution were called drift"):
        check_drift_check(AlarmistDriftCheck)


def test_a_strategy_installed_through_the_entry_point_group_can_be_searched(tmp_path):
    (tmp_path / "contrib_strategy.py").write_text(
        textwrap.dedent(
            """
            import optuna
            from automl_tasks.search.strategies import SearchStrategy

            class QMCStrategy(SearchStrategy):
                name, description = "qmc", "quasi-Monte Carlo (Sobol) draws"

                def sampler(self):
                    return optuna.samplers.QMCSampler(seed=self.seed, warn_independent_sampling=False)
            """
        )
    )
    info = tmp_path / "contrib_strategy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: contrib-strategy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loopml.strategies]\nqmc = contrib_strategy:QMCStrategy\n")
    code = (
        "import json; from automl_tasks.search.strategies import STRATEGIES, make_strategy; "
        "from automl_tasks.testing import check_strategy; "
        "check_strategy(STRATEGIES['qmc']); "
        "print(json.dumps({'names': sorted(STRATEGIES), 'made': type(make_strategy('qmc')).__name__}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": f"{tmp_path}:{REPO}"},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "qmc" in result["names"] and result["made"] == "QMCStrategy"
