"""Family names, trigger-form validation and the advisor's suggestions."""

from __future__ import annotations

import pytest

from automl_tasks.core.errors import ConfigurationError, SearchSpaceError
from automl_tasks.families.aliases import check_family_name
from automl_tasks.pipelines.advisor import suggest
from automl_tasks.pipelines.requests import NoCodeRequest
from automl_tasks.search_space import default_tabular_space


def test_family_names_are_checked():
    assert check_family_name("breast_cancer-v2") == "breast_cancer-v2"
    with pytest.raises(ValueError, match="model family name"):
        check_family_name("bad name!")


@pytest.mark.parametrize(
    ("conf", "fragment"),
    [
        ({"dataset": "nope"}, "'dataset' parameter"),
        ({"dataset": "iris", "n_workers": 0}, "'n_workers' parameter must be an integer in [1, 16]. Got 0"),
        ({"dataset": "iris", "task_type": "clustering"}, "'task_type'"),
        ({"dataset": "iris", "colour": "red"}, "unknown parameters ['colour']"),
    ],
)
def test_trigger_form_errors_name_the_parameter(conf, fragment):
    with pytest.raises(ConfigurationError) as info:
        NoCodeRequest.from_conf(conf)
    assert fragment in str(info.value)


def test_bad_search_space_in_form_is_rejected_with_its_path():
    with pytest.raises(SearchSpaceError, match=r"params\[0\]\.range"):
        NoCodeRequest.from_conf(
            {"dataset": "iris", "search_space": "params:\n  - {name: x, type: int, range: [3, 1]}\n"}
        )


def test_request_names_dataset_and_family(tmp_path):
    path = tmp_path / "my table.csv"
    path.write_text("a,target\n1,0\n2,1\n")
    request = NoCodeRequest.from_conf({"dataset": str(path), "n_trials": 5.0})
    assert request.dataset_name == "my_table" and request.family_name == "my_table" and request.n_trials == 5


def test_advisor_suggestions():
    space = default_tabular_space()
    best = {
        "model": "lightgbm",
        "model.lightgbm.learning_rate": 0.3,
        "model.lightgbm.subsample": 1.0,
        "model.lightgbm.num_leaves": 20,
        "scaling": "zscore",
    }
    profile = {
        "target": "target",
        "class_balance": {"0": 90, "1": 10},
        "minority_share": 0.1,
        "column_stats": {"x": {"missing_share": 0.5}, "y": {"missing_share": 0.0}},
    }
    out = suggest(space, best, {"scaling": 0.01, "model": 0.99}, profile, {})
    kinds = {(s["kind"], s["param"]) for s in out}
    assert ("widen_range", "model.lightgbm.learning_rate") in kinds  # at the upper end
    assert ("widen_range", "model.lightgbm.subsample") not in kinds  # bounded ratio
    assert ("widen_range", "model.lightgbm.num_leaves") not in kinds  # inside the range
    assert ("fix_param", "scaling") in kinds and ("fix_param", "model") not in kinds
    assert ("collect_data", "target") in kinds
    assert ("check_column", "x") in kinds and ("check_column", "y") not in kinds
    assert any("class 1" in s["text"] for s in out)


def _study_with(scores: dict[str, list[float]], stop: str | None = None):
    import optuna

    study = optuna.create_study(direction="maximize")
    for model, values in scores.items():
        for value in values:
            study.enqueue_trial({"model": model})
            trial = study.ask()
            assert trial.suggest_categorical("model", ["lightgbm", "mlp", "linear"]) == model
            study.tell(trial, value)
    if stop:
        study.set_user_attr("loopml.stop", stop)
    return study


def test_a_model_family_that_every_other_beat_is_suggested_for_dropping():
    from types import SimpleNamespace

    from automl_tasks.pipelines.advisor import search_suggestions

    plan = SimpleNamespace(metric="roc_auc", time_budget_s=30)
    study = _study_with({"lightgbm": [0.90, 0.91, 0.92], "mlp": [0.50, 0.55, 0.52], "linear": [0.93]})
    found = search_suggestions(study, plan)
    drops = [s for s in found if s["kind"] == "drop_choice"]
    assert [s["edit"] for s in drops] == [{"kind": "drop_choice", "param": "model", "value": "mlp"}]
    assert "beaten by" in drops[0]["text"]


def test_a_search_stopped_by_its_budget_while_improving_suggests_a_larger_budget():
    from types import SimpleNamespace

    from automl_tasks.pipelines.advisor import search_suggestions

    plan = SimpleNamespace(metric="roc_auc", time_budget_s=30)
    improving = _study_with({"lightgbm": [0.80, 0.81, 0.82, 0.83, 0.90]}, stop="time budget of 30s spent")
    (raise_budget,) = [s for s in search_suggestions(improving, plan) if s["kind"] == "raise_budget"]
    assert raise_budget["edit"] == {"kind": "set_budget", "param": "time_budget_s", "value": 60}
    settled = _study_with({"lightgbm": [0.90, 0.81, 0.82, 0.83, 0.80]}, stop="time budget of 30s spent")
    assert not [s for s in search_suggestions(settled, plan) if s["kind"] == "raise_budget"]
    by_trials = _study_with({"lightgbm": [0.80, 0.81, 0.82, 0.83, 0.90]}, stop="trial budget of 5 spent")
    assert not [s for s in search_suggestions(by_trials, plan) if s["kind"] == "raise_budget"]


def test_a_stored_dataset_version_is_a_dataset():
    request = NoCodeRequest.from_conf({"dataset": "dataset://iris@0123abcd"})
    assert request.dataset_name == "iris"
    with pytest.raises(ConfigurationError, match="dataset://NAME@VERSION"):
        NoCodeRequest.from_conf({"dataset": "dataset://iris"})
