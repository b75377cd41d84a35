"""The search-space language: valid trees, conditions, forbidden combinations, errors."""

from __future__ import annotations

import optuna
import pytest

from automl_tasks.core.errors import SearchSpaceError
from automl_tasks.search_space import (
    ForbiddenConfiguration,
    default_tabular_space,
    load_search_space,
    parse_search_space,
)

TREE = """
params:
  - name: depth
    type: int
    range: [1, 3]
  - name: block
    type: string
    range: [conv, attention]
    submodule:
      conv:
        - {name: kernel, type: int_cat, range: [3, 5, 7]}
        - {name: width, type: int_log, range: [8, 256]}
      attention:
        - {name: heads, type: int_cat, range: [2, 4, 8]}
        - name: norm
          type: string
          range: [layer, rms]
          submodule:
            rms:
              - {name: eps, type: float_log, range: [1.0e-8, 1.0e-4]}
  - {name: dropout, type: float, range: [0.0, 0.5]}
  - {name: lr, type: float_log, range: [1.0e-4, 1.0e-1]}
  - {name: scale, type: float_cat, range: [0.5, 1.0, 2.0]}
  - {name: use_bias, type: bool}
conditions:
  - {child: dropout, parent: depth, type: in, range: [2, 3]}
forbidden:
  - {block: attention, use_bias: true}
"""


def _sample_many(space, n=60):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    configs = []
    for _ in range(n):
        trial = study.ask()
        try:
            configs.append(space.sample(trial))
            study.tell(trial, 0.0)
        except ForbiddenConfiguration:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return configs


def test_children_exist_only_under_their_parent_value():
    configs = _sample_many(load_search_space(TREE))
    assert configs
    for config in configs:
        if config["block"] == "conv":
            assert {"block.conv.kernel", "block.conv.width"} <= set(config)
            assert not any(k.startswith("block.attention.") for k in config)
        else:
            assert "block.attention.heads" in config
            assert not any(k.startswith("block.conv.") for k in config)
            has_eps = "block.attention.norm.rms.eps" in config
            assert has_eps == (config["block.attention.norm"] == "rms")


def test_types_and_ranges_are_respected():
    for config in _sample_many(load_search_space(TREE)):
        assert 1 <= config["depth"] <= 3 and isinstance(config["depth"], int)
        assert 1e-4 <= config["lr"] <= 1e-1
        assert config["scale"] in (0.5, 1.0, 2.0)
        assert config["use_bias"] in (True, False)
        if "block.conv.width" in config:
            assert 8 <= config["block.conv.width"] <= 256


def test_condition_activates_child_only_when_it_holds():
    configs = _sample_many(load_search_space(TREE))
    for config in configs:
        assert ("dropout" in config) == (config["depth"] in (2, 3))
    assert any("dropout" in c for c in configs) and any("dropout" not in c for c in configs)


def test_forbidden_combination_never_comes_out():
    configs = _sample_many(load_search_space(TREE), n=80)
    assert not any(c["block"] == "attention" and c["use_bias"] for c in configs)


def test_default_config_and_hash_are_stable():
    space = default_tabular_space()
    config = space.default_config()
    assert config["model"] == "lightgbm"
    assert config["model.lightgbm.num_leaves"] == 31
    assert not any(k.startswith("model.mlp.") for k in config)
    assert space.hash == default_tabular_space().hash
    assert space.hash != load_search_space(TREE).hash


def test_default_tabular_space_names_every_model_branch():
    names = default_tabular_space().names()
    for model in ("lightgbm", "random_forest", "extra_trees", "linear", "mlp"):
        assert any(n.startswith(f"model.{model}.") for n in names)
    assert {"imputation", "scaling", "categorical_encoding"} <= set(names)


@pytest.mark.parametrize(
    ("document", "path", "fragment"),
    [
        ({"params": []}, "params", "non-empty list"),
        ({"params": [{"name": "x", "type": "integer", "range": [1, 2]}]}, "params[0].type", "expected one of"),
        ({"params": [{"name": "x", "type": "int", "range": [5, 1]}]}, "params[0].range", "low < high"),
        ({"params": [{"name": "x", "type": "float_log", "range": [0, 1]}]}, "params[0].range", "low > 0"),
        ({"params": [{"name": "x", "type": "int", "range": [1.5, 3]}]}, "params[0].range", "two integers"),
        ({"params": [{"name": "x", "type": "string", "range": ["a", 3]}]}, "params[0].range[1]", "string"),
        ({"params": [{"name": "x", "type": "int", "range": [1, 2], "default": 9}]}, "params[0].default", "outside"),
        (
            {
                "params": [
                    {
                        "name": "m",
                        "type": "string",
                        "range": ["a"],
                        "submodule": {"b": [{"name": "y", "type": "int", "range": [1, 2]}]},
                    }
                ]
            },
            "params[0].submodule.b",
            "not in the parent's range",
        ),
        (
            {
                "params": [
                    {
                        "name": "m",
                        "type": "string",
                        "range": ["a"],
                        "submodule": {"a": [{"name": "y", "type": "int", "range": [3, 2]}]},
                    }
                ]
            },
            "params[0].submodule.a[0].range",
            "low < high",
        ),
        (
            {
                "params": [{"name": "x", "type": "int", "range": [1, 2]}],
                "conditions": [{"child": "x", "parent": "nope", "type": "equal", "range": [1]}],
            },
            "conditions[0].parent",
            "unknown parameter",
        ),
        (
            {
                "params": [
                    {"name": "a", "type": "int", "range": [1, 2]},
                    {"name": "b", "type": "int", "range": [1, 2]},
                ],
                "conditions": [{"child": "a", "parent": "b", "type": "equal", "range": [1]}],
            },
            "conditions[0].parent",
            "declared before",
        ),
        (
            {"params": [{"name": "x", "type": "int", "range": [1, 2]}], "forbidden": [{"x": 1}]},
            "forbidden[0]",
            "at least two",
        ),
        ({"params": [{"name": "x", "type": "int", "range": [1, 2]}], "extra": 1}, "$", "unknown keys"),
    ],
)
def test_invalid_documents_name_the_path_of_the_fault(document, path, fragment):
    with pytest.raises(SearchSpaceError) as info:
        parse_search_space(document)
    assert info.value.path == path
    assert fragment in str(info.value)


def test_yaml_syntax_error_names_line():
    with pytest.raises(SearchSpaceError) as info:
        load_search_space("params:\n  - name: x\n    type: [int\n")
    assert "line" in info.value.path
