"""Search-space edits that accepted suggestions make, and configurations carried across versions."""

from __future__ import annotations

import pytest
import yaml

from automl_tasks.core.errors import SearchSpaceError
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, default_tabular_space, load_search_space
from automl_tasks.search_space.edits import apply_edit, space_diff

DEFAULT = DEFAULT_TABULAR_SPACE.read_text()


def edited(kind: str, param: str, value) -> tuple[object, str]:
    text, change = apply_edit(DEFAULT, kind, param, value)
    return load_search_space(text), change


def test_widening_grows_the_range_past_the_named_end_only():
    upper, change = edited("widen_range", "model.lightgbm.learning_rate", "upper")
    assert upper.find("model.lightgbm.learning_rate").range == (0.01, 0.9)  # x3 at most on a log scale
    assert "from [0.01, 0.3] to [0.01, 0.9]" in change
    lower, _ = edited("widen_range", "model.lightgbm.min_child_samples", "lower")
    assert lower.find("model.lightgbm.min_child_samples").range == (1, 60)  # 2 / 3, rounded up
    epochs, _ = edited("widen_range", "model.mlp.epochs", "upper")
    assert epochs.find("model.mlp.epochs").range == (20, 170)  # linear: half the span, an integer
    narrow = yaml.safe_dump({"params": [{"name": "k", "type": "int", "range": [30, 31]}]})
    for edge, grown in (("upper", [30, 32]), ("lower", [29, 31])):
        assert yaml.safe_load(apply_edit(narrow, "widen_range", "k", edge)[0])["params"][0]["range"] == grown, (
            "an integer range grows by at least one step"
        )


def test_ranges_that_cannot_grow_are_refused_with_the_reason():
    with pytest.raises(SearchSpaceError, match="natural domain"):
        apply_edit(DEFAULT, "widen_range", "model.lightgbm.subsample", "upper")
    with pytest.raises(SearchSpaceError, match="cannot grow past its lower end"):
        apply_edit(DEFAULT, "widen_range", "model.mlp.n_layers", "lower")
    with pytest.raises(SearchSpaceError, match="not numeric"):
        apply_edit(DEFAULT, "widen_range", "scaling", "upper")


def test_fixing_a_parameter_keeps_it_as_a_single_choice():
    space, change = edited("fix_param", "model.lightgbm.num_leaves", 17)
    param = space.find("model.lightgbm.num_leaves")
    assert (param.type, param.range, param.default) == ("int_cat", (17,), 17)
    assert "fixed model.lightgbm.num_leaves to 17" in change
    model, _ = edited("fix_param", "model", "lightgbm")
    assert model.find("model").range == ("lightgbm",)
    assert model.find("model.mlp.epochs") is None, "other models' parameters go with them"
    with pytest.raises(SearchSpaceError, match="not one of scaling's choices"):
        apply_edit(DEFAULT, "fix_param", "scaling", "robust")


def test_dropping_a_model_family_removes_its_parameters():
    space, change = edited("drop_choice", "model", "mlp")
    assert "mlp" not in space.find("model").range
    assert space.find("model.mlp.epochs") is None
    assert "dropped 'mlp' from model" in change
    one = yaml.safe_dump(
        {
            "params": [
                {"name": "model", "type": "string", "range": ["lightgbm"]},
                {"name": "x", "type": "int", "range": [1, 3]},
            ]
        }
    )
    with pytest.raises(SearchSpaceError, match="only choice"):
        apply_edit(one, "drop_choice", "model", "lightgbm")


def test_unknown_parameters_and_edits_name_the_fault():
    with pytest.raises(SearchSpaceError, match="no parameter 'model.lightgbm.depth'"):
        apply_edit(DEFAULT, "widen_range", "model.lightgbm.depth", "upper")
    with pytest.raises(SearchSpaceError, match="no search-space edit for a 'collect_data'"):
        apply_edit(DEFAULT, "collect_data", "target", None)


def test_the_diff_shows_the_change_not_the_formatting():
    text, _ = apply_edit(DEFAULT, "fix_param", "scaling", "zscore")
    diff = space_diff(DEFAULT, text)
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ["-  range: [zscore, minmax, log]", "+  range: [zscore]", "+  default: zscore"], diff
    assert "#" not in diff, "comments of the original are not reported as removed"


def test_configurations_are_projected_into_an_edited_space():
    old = default_tabular_space()
    config = old.default_config()
    assert old.project(config) == config, "the same space keeps a configuration as it is"
    fixed, _ = edited("fix_param", "model.lightgbm.num_leaves", 17)
    assert fixed.project(config)["model.lightgbm.num_leaves"] == 17
    dropped, _ = edited("drop_choice", "model", "lightgbm")
    assert dropped.project(config) is None, "a configuration of a dropped model does not fit"
    narrow = yaml.safe_load(DEFAULT)
    narrow["params"][3]["submodule"]["lightgbm"][0]["range"] = [0.2, 0.3]
    narrow["params"][3]["submodule"]["lightgbm"][0]["default"] = 0.25
    assert load_search_space(yaml.safe_dump(narrow)).project(config) is None, "0.1 is out of the new range"
