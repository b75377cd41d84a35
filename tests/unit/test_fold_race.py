"""The fold race (search/fold_race): a cross-validated trial that loses to its family's best
trial on its first folds is stopped; one that keeps up, or has no rival in its family, runs on."""

from __future__ import annotations

import pathlib

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from automl_tasks.core.errors import TrialPruned
from automl_tasks.core.tags import ERROR_TAG
from automl_tasks.estimators import TABULAR_ESTIMATOR, DataSpec
from automl_tasks.estimators.metrics import Metric
from automl_tasks.estimators.tabular import CV_FOLDS, TabularEstimator
from automl_tasks.search import load_study, run_worker, start_search
from automl_tasks.search.fold_race import FOLD_RACE_MIN_FOLDS, FoldRacePruner
from automl_tasks.search.strategies import Task, make_strategy
from tests.unit.test_search_engine import make_plan
from tests.unit.test_search_plan import INTAKE, tiny_plan

MODEL = CategoricalDistribution(["lightgbm", "mlp"])
BEST_FOLDS = [0.86, 0.84, 0.85, 0.86, 0.84]


def _study_with_a_best(model: str = "lightgbm") -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=FoldRacePruner(("model",)))
    study.add_trial(
        create_trial(
            params={"model": model},
            distributions={"model": MODEL},
            value=sum(BEST_FOLDS) / len(BEST_FOLDS),
            intermediate_values=dict(enumerate(BEST_FOLDS)),
        )
    )
    return study


def _race(study: optuna.Study, model: str, fold_scores: list[float]) -> list[bool]:
    """Whether the race stops a trial of `model` after each of `fold_scores`."""
    study.enqueue_trial({"model": model})
    trial = study.ask({"model": MODEL})
    assert trial.params["model"] == model
    verdicts = []
    for fold, score in enumerate(fold_scores):
        trial.report(score, fold)
        verdicts.append(trial.should_prune())
    return verdicts


def test_a_trial_worse_on_its_first_three_folds_is_stopped_there():
    verdicts = _race(_study_with_a_best(), "lightgbm", [0.80, 0.79, 0.80, 0.81])
    assert verdicts[:2] == [False, False], "stopped before the race's minimum number of folds"
    assert verdicts[FOLD_RACE_MIN_FOLDS - 1] is True


def test_a_trial_that_keeps_up_with_the_best_runs_on():
    assert not any(_race(_study_with_a_best(), "lightgbm", [0.87, 0.83, 0.86, 0.85, 0.85]))


def test_a_trial_is_raced_against_its_own_family_only():
    # an MLP far below the best LightGBM has no MLP to lose to: it runs all its folds
    assert not any(_race(_study_with_a_best("lightgbm"), "mlp", [0.70, 0.69, 0.70, 0.71, 0.70]))
    # against the best MLP it is stopped
    assert _race(_study_with_a_best("mlp"), "mlp", [0.70, 0.69, 0.70])[-1] is True


def test_minimised_metrics_race_the_other_way():
    study = optuna.create_study(direction="minimize", pruner=FoldRacePruner(("model",)))
    study.add_trial(
        create_trial(
            params={"model": "lightgbm"},
            distributions={"model": MODEL},
            value=0.3,
            intermediate_values=dict(enumerate([0.3] * CV_FOLDS)),
        )
    )
    assert _race(study, "lightgbm", [0.4, 0.4, 0.4])[-1] is True
    assert not any(_race(study, "lightgbm", [0.2, 0.2, 0.2]))


@pytest.fixture
def breast_cancer_path(tmp_path: pathlib.Path, breast_cancer_frame) -> str:
    path = tmp_path / "bc.parquet"
    breast_cancer_frame.to_parquet(path)
    return str(path)


def _trial(path: str, *, cross_validate: bool | None = None) -> TabularEstimator:
    return TabularEstimator(
        run_epochs=None,
        data=DataSpec(path, "target", "binary", cross_validate=cross_validate),
        is_trainer=False,
        model_args={"model": "linear"},
        metric=Metric("roc_auc"),
    )


def test_the_tabular_estimator_reports_each_folds_score_and_stops_when_told(breast_cancer_path):
    trial = _trial(breast_cancer_path)
    reports: list[tuple[float, int]] = []
    trial.reporter = lambda value, step: reports.append((value, step)) and False
    trial.run()
    assert [step for _, step in reports] == list(range(CV_FOLDS))
    assert [value for value, _ in reports] == trial.fold_scores_

    stopped = _trial(breast_cancer_path)
    stopped.reporter = lambda value, step: step == 2
    with pytest.raises(TrialPruned):
        stopped.run()
    assert len(stopped.fold_scores_) == 3, "folds were fitted after the search said stop"


def test_a_holdout_trial_reports_nothing(breast_cancer_path):
    trial = _trial(breast_cancer_path, cross_validate=False)
    reports: list = []
    trial.reporter = lambda value, step: reports.append(step) and False
    trial.run()
    assert reports == [] and len(trial.fold_scores_) == 1


def test_a_search_worker_stops_a_losing_trial_and_counts_it(workspace, breast_cancer_frame):
    space_yaml = """
params:
  - name: model
    type: string
    range: [linear]
    submodule:
      linear:
        - {name: C, type: float_log, range: [0.0001, 10.0], default: 1.0}
"""
    plan, space = make_plan(
        workspace,
        breast_cancer_frame,
        n_trials=2,
        name="race",
        space=space_yaml,
        space_yaml=space_yaml,
        race_folds=True,
    )
    start_search(workspace.optuna_uri, plan, space)  # enqueues the default, C = 1
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    assert isinstance(study.pruner, FoldRacePruner) and study.pruner.family_params == ("model",)
    # on breast_cancer C = 0.0001 is worse than C = 1 on every fold (ROC AUC 0.974-0.997 against 0.988-0.9995)
    study.enqueue_trial({**space.default_config(), "model.linear.C": 0.0001})
    summary = run_worker(workspace, plan.study_name, 0)
    assert (summary.evaluated, summary.stopped_early, summary.failed) == (1, 1, 0), summary
    first, second = load_study(workspace.optuna_uri, plan.study_name)[0].trials
    assert first.state == TrialState.COMPLETE and len(first.intermediate_values) == CV_FOLDS
    assert second.state == TrialState.PRUNED and len(second.intermediate_values) < CV_FOLDS
    assert (
        f"stopped after fold {len(second.intermediate_values)} of {CV_FOLDS} (fold race" in second.user_attrs[ERROR_TAG]
    )


def test_searches_of_several_objectives_record_no_fold_scores():
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask({"model": MODEL})
    assert make_strategy("tpe").report(Task(trial, {}), 0.5, 0) is False
    assert study.trials[0].intermediate_values == {}


def test_the_plan_races_the_tabular_estimators_folds_with_one_objective_and_no_fidelity():
    assert tiny_plan(INTAKE).race_folds and tiny_plan(INTAKE, algorithm=TABULAR_ESTIMATOR).race_folds
    assert not tiny_plan(INTAKE, trade_off_latency=True, deploy_target="onnx-cpu").race_folds
    assert not tiny_plan(INTAKE, run_epochs=3).race_folds
    assert not tiny_plan(INTAKE, algorithm="pkg.mod:Estimator").race_folds
