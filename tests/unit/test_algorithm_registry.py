"""Registering algorithms runs a real smoke test of four capabilities (good and broken)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from automl_tasks.algorithms import CAPABILITIES, load_spec, register, report_of, require
from automl_tasks.core.errors import ConfigurationError, LoopmlError
from automl_tasks.core.tracking import mlflow_client

REPO = Path(__file__).resolve().parents[2]


def test_the_digits_network_has_every_capability_and_the_report_is_in_mlflow(workspace):
    report = register(workspace, "digits_cnn")
    assert [c.name for c in report.capabilities] == list(CAPABILITIES)
    assert all(c.ok for c in report.capabilities), report.summary()
    assert "onnxruntime: ok" in report.capabilities[-1].detail
    assert report_of(workspace, "digits_cnn") == report
    require(workspace, "digits_cnn", "deployable")
    client = mlflow_client(workspace)
    runs = client.search_runs(
        [client.get_experiment_by_name("loopml-algorithms").experiment_id], "tags.`loopml.algorithm` = 'digits_cnn'"
    )
    assert len(runs) == 1 and runs[0].data.metrics == {name: 1.0 for name in CAPABILITIES}


def test_the_broken_example_is_reported_with_reasons_and_cannot_be_deployed(workspace):
    report = register(workspace, "broken_example")
    searchable, *rest = report.capabilities
    assert not searchable.ok and "non-finite value nan" in searchable.detail
    assert all(not c.ok and c.detail == "not tried: searchable failed" for c in rest)
    with pytest.raises(LoopmlError, match="'broken_example' is not deployable"):
        require(workspace, "broken_example", "deployable")
    with pytest.raises(LoopmlError, match="not registered"):
        require(workspace, "digits_cnn", "deployable")


def test_the_network_space_is_a_conditional_tree():
    space = load_spec(REPO / "automl_tasks/algorithms/builtin/digits_cnn").space()
    shallow = [c for c in space.grid(2) if c["depth"] == 1]
    assert shallow and all("block2" not in c and "block3" not in c for c in shallow)
    deep = [c for c in space.grid(2) if c["depth"] == 3]
    assert all(not (c["block1"] == "dense" and c["block2"] == "conv") for c in deep)  # forbidden combination
    assert {"block1.conv.width", "block1.dense.width"} <= set(space.names())


def test_bad_specs_name_the_file_and_key(tmp_path):
    (tmp_path / "algorithm.yaml").write_text("name: x\nversion: 1\nestimator: nocolon\n")
    with pytest.raises(ConfigurationError, match=r"algorithm.yaml: \$: missing keys \['task_types'"):
        load_spec(tmp_path)
    with pytest.raises(ConfigurationError, match="no algorithm.yaml there"):
        load_spec(tmp_path / "nothing")


def test_cli_lists_and_registers(workspace):
    env = {**__import__("os").environ, **workspace.env()}
    out = subprocess.run(
        [sys.executable, "-m", "loopml.cli", "algorithms", "register", "broken_example"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    report = json.loads(out.stdout[out.stdout.index("{") :])
    assert report["algorithm"] == "broken_example" and not report["capabilities"][0]["ok"]
    listing = subprocess.run(
        [sys.executable, "-m", "loopml.cli", "algorithms", "list"], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert "broken_example 0.1: searchable NO" in listing.stdout
    assert "digits_cnn 1.0: built in, not registered" in listing.stdout


def test_a_name_becomes_an_estimator_reference_once_and_a_reference_stays_one(tmp_path):
    from automl_tasks.algorithms import estimator_reference
    from automl_tasks.estimators import TABULAR_ESTIMATOR, TabularEstimator, estimator_class

    assert estimator_reference(None, "tabular") == TABULAR_ESTIMATOR
    assert estimator_class(TABULAR_ESTIMATOR) is TabularEstimator
    assert estimator_reference(None, "digits_cnn") == "automl_tasks.estimators.digits_cnn:DigitsCNNEstimator"
    assert (
        estimator_reference(None, "tests.sleepy_estimator:SleepyEstimator") == "tests.sleepy_estimator:SleepyEstimator"
    )
    folder = REPO / "automl_tasks/algorithms/builtin/broken_example"
    assert estimator_reference(None, str(folder)).endswith("broken_example.estimator:DivergingEstimator")
    with pytest.raises(ConfigurationError, match="unknown algorithm 'nope'"):
        estimator_reference(None, "nope")


def test_the_tabular_reference_needs_no_registration_and_other_references_do(workspace):
    from automl_tasks.estimators import TABULAR_ESTIMATOR

    require(workspace, TABULAR_ESTIMATOR, "deployable")  # checked by this suite: needs_registration false
    require(workspace, "tabular", "deployable")
    with pytest.raises(LoopmlError, match="algorithm 'digits_cnn' is not registered"):
        require(workspace, "automl_tasks.estimators.digits_cnn:DigitsCNNEstimator", "deployable")


def test_a_search_plan_holds_a_reference_never_a_name():
    from automl_tasks.estimators import TABULAR_ESTIMATOR, DataSpec
    from automl_tasks.search import SearchPlan

    fields = dict(
        study_name="s",
        family="f",
        data=DataSpec("x.parquet", "target", "binary"),
        dataset_uri="dataset://x@1",
        metric="roc_auc",
        direction="maximize",
        space_yaml="params: []",
        space_hash="h",
        n_trials=1,
        time_budget_s=1.0,
        deadline=0.0,
        n_workers=1,
        experiment_id="1",
        parent_run_id="r",
    )
    assert SearchPlan(**fields).algorithm == TABULAR_ESTIMATOR
    with pytest.raises(ValueError, match="must be a 'package.module:Class' reference; got 'digits_cnn'"):
        SearchPlan(**fields, algorithm="digits_cnn")
    stored = json.loads(SearchPlan(**fields).to_json()) | {"algorithm": "tabular"}  # written before references
    assert SearchPlan.from_json(json.dumps(stored)).algorithm == TABULAR_ESTIMATOR
