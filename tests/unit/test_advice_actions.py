"""Acting on a pipeline run's advice: accept, dismiss, edit; space versions and warm starts.

Real MLflow store and real Optuna storage in a temporary workspace; the suggestions are
the advisor's own (`suggest`), on a best configuration chosen so that they are known.
"""

from __future__ import annotations

import json

import optuna
import pytest

from automl_tasks.core.errors import ConfigurationError, SearchSpaceError
from automl_tasks.core.tags import DATASET_URI_TAG, FAMILY_TAG, KIND_TAG, SPACE_HASH_TAG, STUDY_TAG
from automl_tasks.core.tracking import ensure_experiment, mlflow_client
from automl_tasks.pipelines.advice_actions import (
    AdviceError,
    accept,
    dismiss,
    edit_space,
    mark_accepted,
    suggestions,
)
from automl_tasks.pipelines.advisor import suggest
from automl_tasks.search.formatter import check_warm_start_study, warm_start_configs
from automl_tasks.search.storage import open_storage
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, default_tabular_space, load_search_space
from automl_tasks.search_space.edits import apply_edit
from automl_tasks.search_space.versions import family_versions, find_version, version_text

FAMILY = "advised"
STUDY = "advised-run-1"
CONF = {"dataset": "/data/table.csv", "target": "y", "n_trials": 8, "time_budget_s": 60}


@pytest.fixture
def pipeline_run(workspace):
    """A finished pipeline run whose advisor suggested: widen learning_rate (best at the top of
    its range), collect data (imbalanced classes), and a budget raise."""
    space = default_tabular_space()
    best = space.default_config() | {"model.lightgbm.learning_rate": 0.3, "model.lightgbm.reg_lambda": 0.1}
    profile = {"target": "y", "class_balance": {"0": 90, "1": 10}, "minority_share": 0.1}
    advice = suggest(space, best, {}, profile, {})
    advice.append(
        {
            "kind": "raise_budget",
            "param": "time_budget_s",
            "text": "still improving",
            "edit": {"kind": "set_budget", "param": "time_budget_s", "value": 120},
        }
    )
    assert [a["kind"] for a in advice] == ["widen_range", "collect_data", "raise_budget"]
    client = mlflow_client(workspace)
    run = client.create_run(
        ensure_experiment(workspace, FAMILY),
        tags={KIND_TAG: "pipeline", FAMILY_TAG: FAMILY, DATASET_URI_TAG: "dataset://table@abc", STUDY_TAG: STUDY},
    )
    client.log_text(run.info.run_id, json.dumps(advice), "advisor/suggestions.json")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_accepting_a_suggestion_records_a_version_and_plans_a_warm_started_rerun(workspace, pipeline_run):
    items = suggestions(workspace, pipeline_run)
    assert [(i["kind"], i["actionable"], i["status"]) for i in items] == [
        ("widen_range", True, ""),
        ("collect_data", False, ""),
        ("raise_budget", True, ""),
    ]
    rerun = accept(workspace, pipeline_run, 0, conf=CONF, user="alice")
    new_space = load_search_space(rerun.conf["search_space"])
    assert new_space.find("model.lightgbm.learning_rate").range == (0.01, 0.9)
    assert rerun.conf == CONF | {
        "search_space": rerun.conf["search_space"],
        "dataset": "dataset://table@abc",
        "family": FAMILY,
        "warm_start_study": STUDY,
    }
    version = find_version(workspace, FAMILY, new_space.hash)
    root = default_tabular_space().hash
    assert (version.parent, version.accepted_by, version.source_run) == (root, "alice", pipeline_run)
    assert "widened model.lightgbm.learning_rate" in version.change
    assert "+      range: [0.01, 0.9]" in version_text(workspace, version.run_id, "diff.patch")
    assert find_version(workspace, FAMILY, root) is not None, "the parent is recorded too"
    mark_accepted(workspace, pipeline_run, 0, rerun, user="alice", rerun_id="manual__1")
    assert suggestions(workspace, pipeline_run)[0]["status"] == (
        f"accepted by alice: space version {new_space.hash}, re-run manual__1"
    )
    with pytest.raises(AdviceError, match="already handled"):
        accept(workspace, pipeline_run, 0, conf=CONF, user="bob")


def test_a_budget_suggestion_changes_the_rerun_not_the_space(workspace, pipeline_run):
    rerun = accept(workspace, pipeline_run, 2, conf=CONF, user="alice")
    assert rerun.conf["time_budget_s"] == 120
    assert load_search_space(rerun.conf["search_space"]).hash == default_tabular_space().hash
    assert "set time_budget_s to 120 (was 60)" in rerun.change


def test_advice_for_people_is_dismissed_not_applied(workspace, pipeline_run):
    with pytest.raises(AdviceError, match="nothing to apply"):
        accept(workspace, pipeline_run, 1, conf=CONF, user="alice")
    dismiss(workspace, pipeline_run, 1, user="carol")
    assert suggestions(workspace, pipeline_run)[1]["status"] == "dismissed by carol"
    with pytest.raises(AdviceError, match="no suggestion 7"):
        dismiss(workspace, pipeline_run, 7, user="carol")
    with pytest.raises(AdviceError, match="does not exist"):
        accept(workspace, "0" * 32, 0, conf=CONF, user="alice")


def test_a_hand_edit_with_an_error_records_nothing(workspace, pipeline_run):
    broken = DEFAULT_TABULAR_SPACE.read_text().replace("range: [0.01, 0.3]", "range: [0.3, 0.01]")
    with pytest.raises(SearchSpaceError, match=r"params\[3\]\.range|range"):
        edit_space(workspace, pipeline_run, broken, conf=CONF, user="dave")
    assert family_versions(workspace, FAMILY) == []
    fine = DEFAULT_TABULAR_SPACE.read_text().replace("range: [0.01, 0.3]", "range: [0.02, 0.2]")
    rerun = edit_space(workspace, pipeline_run, fine, conf=CONF, user="dave")
    versions = family_versions(workspace, FAMILY)
    assert [v["version"] for v in versions] == [rerun.space.version, default_tabular_space().hash]
    assert versions[0]["accepted_by"] == "dave" and versions[0]["parent"] == versions[1]["version"]


def test_a_rerun_is_warm_started_with_the_earlier_configurations_that_fit(workspace):
    old = default_tabular_space()
    storage = open_storage(workspace.optuna_uri)
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    study.set_user_attr(FAMILY_TAG, FAMILY)
    study.set_user_attr(SPACE_HASH_TAG, old.hash)
    for model, score in (("lightgbm", 0.9), ("mlp", 0.95), ("linear", 0.8)):
        study.enqueue_trial(old.default_config() | {"model": model})
        trial = study.ask()
        config = old.sample(trial)
        assert config["model"] == model
        study.tell(trial, score)
    text, _ = apply_edit(DEFAULT_TABULAR_SPACE.read_text(), "drop_choice", "model", "mlp")
    new = load_search_space(text)
    found = warm_start_configs(workspace.optuna_uri, FAMILY, new.hash, exclude="x", only_study=STUDY, space=new)
    assert [c["model"] for c in found] == ["lightgbm", "linear"], "best first; the dropped model's left out"
    assert all(new.admits(c) for c in found)
    assert warm_start_configs(workspace.optuna_uri, FAMILY, new.hash, exclude="x") == [], (
        "without a named study, only studies over the same space warm-start"
    )
    check_warm_start_study(workspace.optuna_uri, STUDY, FAMILY)
    with pytest.raises(ConfigurationError, match="does not exist"):
        check_warm_start_study(workspace.optuna_uri, "nope", FAMILY)
    with pytest.raises(ConfigurationError, match="warm starts stay within a family"):
        check_warm_start_study(workspace.optuna_uri, STUDY, "other")


def test_a_suggestion_about_a_feature_group_applies_to_the_space_with_the_groups(workspace):
    """The formatter adds feature-group parameters (issue #15) to the space a run searches,
    not to the space it was asked for; accepting a suggestion about one still works."""
    from automl_tasks.core.tags import FEATURE_PIPELINE_TAG
    from automl_tasks.features.pipeline import FeaturePipeline
    from automl_tasks.features.store import record_feature_pipeline

    features = FeaturePipeline(inputs={"when": "value", "x": "number"}, datetimes={"when": ""})
    record_feature_pipeline(workspace, FAMILY, features)
    advice = [
        {
            "kind": "fix_param",
            "param": "datetime_cycles",
            "text": "unimportant",
            "edit": {"kind": "fix_param", "param": "datetime_cycles", "value": False},
        }
    ]
    client = mlflow_client(workspace)
    run = client.create_run(
        ensure_experiment(workspace, FAMILY),
        tags={
            KIND_TAG: "pipeline",
            FAMILY_TAG: FAMILY,
            DATASET_URI_TAG: "dataset://table@abc",
            STUDY_TAG: STUDY,
            FEATURE_PIPELINE_TAG: features.version,
        },
    )
    client.log_param(run.info.run_id, "task_type", "binary")
    client.log_text(run.info.run_id, json.dumps(advice), "advisor/suggestions.json")
    rerun = accept(workspace, run.info.run_id, 0, conf=CONF, user="alice")
    assert load_search_space(rerun.conf["search_space"]).find("datetime_cycles").range == (False,)
