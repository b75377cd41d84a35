"""The adaptation search space: the method is the root, each method's own settings hang below it.

Learning rates live under each method because their good ranges differ by two orders of
magnitude (a prompt's embeddings want ~1e-2, full fine-tuning ~5e-5); one shared range
would waste most trials. The base model is a one-value parameter so every trial, and the
version built from it, records which model it adapted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from automl_tasks.adaptation.methods import ADAPTER_SCOPES, LORA_TARGETS, METHODS

#: each method's own parameters (names below `method.<method>.` in a configuration)
METHOD_PARAMS: dict[str, list[dict[str, Any]]] = {
    "head": [{"name": "learning_rate", "type": "float_log", "range": [1e-3, 1e-1], "default": 1e-2}],
    "full": [{"name": "learning_rate", "type": "float_log", "range": [1e-5, 2e-4], "default": 5e-5}],
    "lora": [
        {"name": "rank", "type": "int_cat", "range": [4, 8, 16], "default": 8},
        {"name": "alpha", "type": "int_cat", "range": [8, 16, 32], "default": 16},
        {"name": "dropout", "type": "float", "range": [0.0, 0.2], "default": 0.05},
        {"name": "targets", "type": "string", "range": list(LORA_TARGETS), "default": "qv"},
        {"name": "learning_rate", "type": "float_log", "range": [2e-4, 5e-3], "default": 1e-3},
    ],
    "prompt": [
        {"name": "virtual_tokens", "type": "int_cat", "range": [4, 8, 16, 32], "default": 8},
        {"name": "learning_rate", "type": "float_log", "range": [3e-3, 1e-1], "default": 3e-2},
    ],
    "adapter": [
        {"name": "scope", "type": "string", "range": list(ADAPTER_SCOPES), "default": "attention_ffn"},
        {"name": "learning_rate", "type": "float_log", "range": [1e-3, 3e-2], "default": 3e-3},
    ],
}
SHARED_PARAMS: list[dict[str, Any]] = [
    {"name": "epochs", "type": "int", "range": [1, 8], "default": 3},
    {"name": "batch_size", "type": "int_cat", "range": [8, 16, 32], "default": 16},
    {"name": "max_seq_len", "type": "int_cat", "range": [32, 64, 128, 256], "default": 128},
]
#: the method a search starts from when it may (the usual winner on accuracy per parameter)
PREFERRED_DEFAULT = "lora"


def adaptation_space(methods: Sequence[str], base_model: Path) -> str:
    """The space's YAML for the chosen methods (in the project's search-space language)."""
    chosen = [m for m in METHODS if m in methods]
    if not chosen:
        raise ValueError(f"no adaptation method chosen; expected some of {list(METHODS)}")
    root = {
        "name": "method",
        "type": "string",
        "range": chosen,
        "default": PREFERRED_DEFAULT if PREFERRED_DEFAULT in chosen else chosen[0],
        "submodule": {m: METHOD_PARAMS[m] for m in chosen},
    }
    base = {"name": "base_model", "type": "string", "range": [str(base_model)], "default": str(base_model)}
    return yaml.safe_dump({"params": [root, *SHARED_PARAMS, base]}, sort_keys=False)


def method_default(space_yaml: str, method: str) -> dict[str, Any]:
    """The space's default configuration with `method` at the root (a smoke or baseline trial)."""
    from automl_tasks.search_space import load_search_space

    space = load_search_space(space_yaml)
    config = {k: v for k, v in space.default_config().items() if not k.startswith("method.")}
    config["method"] = method
    for param in METHOD_PARAMS[method]:
        config[f"method.{method}.{param['name']}"] = param["default"]
    return config
