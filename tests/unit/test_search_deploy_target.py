"""The deployment goal inside the search (issue #12): compile cache, latency budget, trade-off.

Real engines (ONNX Runtime, OpenVINO), real workers on a shared Optuna storage, real MLflow.
"""

from __future__ import annotations

import dataclasses
import json

import mlflow
import pytest

from automl_tasks.core.errors import UserError
from automl_tasks.core.tags import DEPLOY_FEASIBLE_TAG, INFEASIBLE_ATTR, TARGET_LATENCY_ATTR
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.deploy.compile_cache import CompileCache, shared_cache
from automl_tasks.deploy.targets import get_target
from automl_tasks.search import SearchPlan, load_study, run_worker, start_search, watch_search
from automl_tasks.search.deployment import LATENCY_METRIC, chosen_trial, measure_trial, trial_score
from automl_tasks.search.worker import train_config
from automl_tasks.search_space import load_search_space
from automl_tasks.testing.backends import tiny_feed, tiny_mlp_onnx
from tests.unit.test_search_engine import make_plan

# two models of very different shape; the space's default is the linear one
SPACE = """
params:
  - {name: scaling, type: string, range: [zscore]}
  - name: model
    type: string
    range: [linear, random_forest]
    default: linear
    submodule:
      linear:
        - {name: C, type: float_log, range: [0.01, 10.0], default: 1.0}
      random_forest:
        - {name: n_estimators, type: int_log, range: [30, 300], default: 100}
        - {name: max_depth, type: int_cat, range: [0, 4], default: 0}
"""
CONFIGS = [
    {"scaling": "zscore", "model": "linear", "model.linear.C": 1.0},
    {
        "scaling": "zscore",
        "model": "random_forest",
        "model.random_forest.n_estimators": 60,
        "model.random_forest.max_depth": 0,
    },
    {
        "scaling": "zscore",
        "model": "random_forest",
        "model.random_forest.n_estimators": 30,
        "model.random_forest.max_depth": 4,
    },
]


def test_the_compile_cache_compiles_an_identical_model_once(tmp_path):
    model, feed = tiny_mlp_onnx(), tiny_feed()
    ort, ov = get_target("cloud-cpu"), get_target("edge-cpu")
    cache = CompileCache(tmp_path / "cache")
    first = cache.evaluate(ort, model, feed)
    assert first.deployable and first.latency_ms > 0 and not first.cached
    again = cache.evaluate(ort, model, feed)
    assert again.cached and again.latency_ms == first.latency_ms and (cache.compiles, cache.hits) == (1, 1)
    assert cache.runner(first.key) is not None  # the compiled runner is kept in the process
    # another worker process (a new cache on the same folder) reads the result without compiling
    other = CompileCache(tmp_path / "cache")
    assert other.evaluate(ort, model, feed).cached and other.compiles == 0
    # a different engine, or a different model, is a different entry
    on_ov = cache.evaluate(ov, model, feed)
    assert not on_ov.cached and on_ov.engine == "openvino" and on_ov.deployable
    assert not cache.evaluate(ort, tiny_mlp_onnx(seed=1), feed).cached
    assert cache.compiles == 3


def _plan(workspace, frame, name: str, **goal) -> tuple[SearchPlan, object]:
    return make_plan(
        workspace,
        frame,
        n_trials=len(CONFIGS),
        time_budget_s=300.0,
        name=name,
        space=SPACE,
        space_yaml=SPACE,
        strategy="tpe",
        deploy_target="cloud-cpu",
        **goal,
    )


def _calibrated_budget(workspace, plan) -> tuple[float, dict[str, float], dict[str, float]]:
    """A budget that the best-scoring of CONFIGS misses, when another one is faster (else one
    between the fastest and the slowest); with their latencies and scores by configuration.

    The configurations are trained and measured here through the worker's shared compile
    cache: the search's trials then hit the cache (same data, seed and configuration give
    the same ONNX model), so their latencies are exactly these and the test is not at the
    mercy of a busy machine's timings."""
    latencies, scores = {}, {}
    for config in CONFIGS:
        estimator, score, _ = train_config(plan, config)
        measured = measure_trial(workspace, plan, estimator, workspace.runs / "calibration")
        assert measured.deployable, measured.verdict
        key = json.dumps(config, sort_keys=True)
        latencies[key], scores[key] = measured.latency_ms, score
    best = max(scores, key=scores.get)
    faster = [latency for latency in latencies.values() if latency < latencies[best]]
    low, high = (max(faster), latencies[best]) if faster else (min(latencies.values()), max(latencies.values()))
    assert low < high
    return (low + high) / 2, latencies, scores


def _search(workspace, plan, space) -> object:
    start_search(workspace.optuna_uri, plan, space)
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    for config in CONFIGS[1:]:  # the default (CONFIGS[0]) is enqueued by start_search
        study.enqueue_trial(config)
    cache = shared_cache(workspace.runs / "compile_cache")
    compiles = cache.compiles
    summary = run_worker(workspace, plan.study_name, 0)
    assert summary.evaluated == len(CONFIGS)
    watch_search(workspace, plan.study_name, poll_s=0.2)  # the job estimator: the trials' MLflow runs
    assert cache.compiles == compiles  # every trial's model was compiled before: no compile at all
    return load_study(workspace.optuna_uri, plan.study_name)[0]


def test_a_trial_over_the_latency_budget_is_infeasible_and_never_chosen(workspace, breast_cancer_frame):
    plan, space = _plan(workspace, breast_cancer_frame, "budget")
    budget, latencies, scores = _calibrated_budget(workspace, plan)
    plan = dataclasses.replace(plan, latency_budget_ms=budget)
    study = _search(workspace, plan, space)
    trials = study.trials
    best_overall = max(trials, key=trial_score)
    for t in trials:
        latency = t.user_attrs[TARGET_LATENCY_ATTR]
        assert latency == latencies[json.dumps(t.params, sort_keys=True)]
        over = latency > budget
        assert bool(t.user_attrs.get(INFEASIBLE_ATTR)) is over
        assert (t.constraints["latency_budget"] > 0) is over
    assert any(t.user_attrs.get(INFEASIBLE_ATTR) for t in trials)
    chosen = chosen_trial(study, plan)
    assert chosen.user_attrs[TARGET_LATENCY_ATTR] <= budget
    feasible_scores = [trial_score(t) for t in trials if t.user_attrs[TARGET_LATENCY_ATTR] <= budget]
    assert trial_score(chosen) == max(feasible_scores)
    if best_overall.user_attrs[TARGET_LATENCY_ATTR] > budget:  # the usual case: the best score is too slow
        assert chosen.number != best_overall.number and trial_score(chosen) < trial_score(best_overall)
    # the infeasible trial is visible in MLflow: its child run carries its latency and why
    runs = mlflow.search_runs(
        experiment_ids=[plan.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{plan.parent_run_id}'"
    )
    assert len(runs) == len(CONFIGS) and runs[f"metrics.{LATENCY_METRIC}"].notna().all()
    infeasible = runs[runs[f"tags.{DEPLOY_FEASIBLE_TAG}"] == "false"]
    assert len(infeasible) >= 1
    assert (infeasible[f"metrics.{LATENCY_METRIC}"] > budget).all()
    assert infeasible[f"tags.{INFEASIBLE_ATTR}"].str.contains("over the budget").all()
    # no trial meets an impossible budget: a clear error, not a model
    with pytest.raises(UserError, match="within the latency budget of 1e-06 ms"):
        _choose_with_every_trial_over(study, dataclasses.replace(plan, latency_budget_ms=1e-6))


def _choose_with_every_trial_over(study, plan):
    """The same trials, each over the budget: the registration's choice must refuse, naming it."""
    import optuna

    view = optuna.create_study(directions=study.directions)
    for t in study.trials:
        view.add_trial(
            optuna.trial.create_trial(
                params=t.params,
                distributions=t.distributions,
                values=t.values,
                user_attrs=t.user_attrs,
                system_attrs={**t.system_attrs, "constraints:latency_budget": 1.0},
            )
        )
    return chosen_trial(view, plan)


def test_a_trade_off_search_logs_its_pareto_front(workspace, breast_cancer_frame):
    from automl_tasks.pipelines.advisor import advise

    plan, space = _plan(workspace, breast_cancer_frame, "tradeoff", trade_off_latency=True)
    budget, latencies, _ = _calibrated_budget(workspace, plan)
    plan = dataclasses.replace(plan, latency_budget_ms=budget)
    study = _search(workspace, plan, space)
    assert len(study.directions) == 2
    assert all(t.values[1] == latencies[json.dumps(t.params, sort_keys=True)] for t in study.trials)
    chosen = chosen_trial(study, plan)
    assert chosen.values[1] <= budget
    assert trial_score(chosen) == max(trial_score(t) for t in study.trials if t.values[1] <= budget)
    found = advise(workspace, plan.study_name, {})
    assert chosen.number in found["pareto_front"]
    assert "optimization_history.html" in found["plots"]  # the single-objective plots still draw
    client = mlflow_client(workspace)
    names = {a.path for a in client.list_artifacts(plan.parent_run_id, "advisor")}
    assert {"advisor/pareto_front.csv", "advisor/pareto_front.json", "advisor/pareto_front.html"} <= names
    rows = json.loads((workspace.runs / plan.study_name / "advisor" / "pareto_front.json").read_text())
    assert {r["trial"] for r in rows} == {t.number for t in study.trials}
    assert [r["trial"] for r in rows if r["chosen"]] == [chosen.number]
    assert all(not r["feasible"] for r in rows if r[LATENCY_METRIC] > budget)
    # the registration trains and registers the chosen point (a two-objective study's trial)
    from automl_tasks.core.tags import BEST_TRIAL_TAG
    from automl_tasks.pipelines.registration import train_and_register

    registered = train_and_register(
        workspace, plan.study_name, dag_run_id="r1", dataset_version="v1", auto_promote=False
    )
    assert client.get_model_version("bc", registered.version).tags[BEST_TRIAL_TAG] == str(chosen.number)


def test_trade_off_gets_a_strategy_for_two_objectives():
    from automl_tasks.core.errors import ConfigurationError
    from automl_tasks.search.formatter import choose_strategy
    from automl_tasks.search_space import DEFAULT_TABULAR_SPACE

    space = load_search_space(DEFAULT_TABULAR_SPACE.read_text())
    single, _ = choose_strategy("auto", space, 200, {"rows": 100, "columns": 3}, fidelity=True)
    assert single == "hyperband"  # what auto picks for one objective here
    chosen, why = choose_strategy("auto", space, 200, {"rows": 100, "columns": 3}, fidelity=True, trade_off=True)
    assert chosen == "tpe" and "hyperband cannot" in why
    with pytest.raises(ConfigurationError, match="'strategy' parameter 'cmaes' optimises one objective"):
        choose_strategy("cmaes", space, 20, trade_off=True)
    assert choose_strategy("gp", space, 20, trade_off=True)[0] == "gp"


def test_the_compile_cache_keeps_only_the_latest_runners(tmp_path):
    from automl_tasks.deploy.compile_cache import MAX_RUNNERS

    cache, feed, target = CompileCache(), tiny_feed(), get_target("cloud-cpu")
    records = [cache.evaluate(target, tiny_mlp_onnx(seed=seed), feed) for seed in range(MAX_RUNNERS + 2)]
    kept = [cache.runner(r.key) is not None for r in records]
    assert kept == [False, False] + [True] * MAX_RUNNERS
    assert cache.evaluate(target, tiny_mlp_onnx(seed=0), feed).cached  # its record outlives its runner
