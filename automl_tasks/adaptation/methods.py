"""The adaptation methods: which parameters of the base encoder train, and how.

- head: the encoder is frozen; only the linear head trains (the cheapest baseline).
- full: every weight trains (the accuracy reference; the stored version is the whole model).
- lora: low-rank updates of the attention (and optionally feed-forward) projections.
- prompt: learned virtual tokens prepended to the input (prompt tuning).
- adapter: (IA)^3, PEFT's learned scaling vectors on keys, values and optionally the
  feed-forward layer. PEFT has no bottleneck adapter; (IA)^3 is its adapter-style method
  whose size is the set of modules it scales.
The head always trains. `deployable` turns a trained model into a plain torch module
(LoRA and (IA)^3 merged into the weights, prompts as `PromptedEncoder`) for prediction
and ONNX export.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch

from automl_tasks.adaptation.classifier import PromptedEncoder, TextClassifier
from automl_tasks.core.errors import ConfigurationError

METHODS = ("head", "full", "lora", "prompt", "adapter")
#: the BERT-family module names each LoRA target choice adapts
LORA_TARGETS = {
    "qv": ["query", "value"],
    "qkv": ["query", "key", "value"],
    "all": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
}
ADAPTER_SCOPES = {
    "attention": (["key", "value"], []),
    "attention_ffn": (["key", "value", "output.dense"], ["output.dense"]),
}


def method_param(config: Mapping[str, Any], method: str, name: str, default: Any) -> Any:
    """A method's own hyperparameter (`method.<method>.<name>` in the search space)."""
    return config.get(f"method.{method}.{name}", default)


def peft_config(method: str, config: Mapping[str, Any]):  # -> peft.PeftConfig | None
    """The PEFT configuration of a method (None for head and full, which PEFT does not wrap)."""
    from peft import IA3Config, LoraConfig, PromptTuningConfig, TaskType

    if method == "lora":
        targets = method_param(config, "lora", "targets", "qv")
        rank = int(method_param(config, "lora", "rank", 8))
        return LoraConfig(
            r=rank,
            lora_alpha=int(method_param(config, "lora", "alpha", 2 * rank)),
            lora_dropout=float(method_param(config, "lora", "dropout", 0.0)),
            target_modules=LORA_TARGETS[targets],
        )
    if method == "prompt":
        return PromptTuningConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            num_virtual_tokens=int(method_param(config, "prompt", "virtual_tokens", 8)),
        )
    if method == "adapter":
        targets, feedforward = ADAPTER_SCOPES[method_param(config, "adapter", "scope", "attention_ffn")]
        return IA3Config(target_modules=targets, feedforward_modules=feedforward)
    return None


def build_classifier(
    encoder: torch.nn.Module, method: str, config: Mapping[str, Any], n_classes: int
) -> TextClassifier:
    """The base encoder prepared for `method`, with a fresh head; only the method's parameters train."""
    if method not in METHODS:
        raise ConfigurationError(f"adaptation method {method!r} is unknown; expected one of {list(METHODS)}")
    hidden = int(encoder.config.hidden_size)
    adapted = encoder
    if method == "head":
        encoder.requires_grad_(False)
    elif method != "full":
        from peft import get_peft_model

        adapted = get_peft_model(encoder, peft_config(method, config))  # freezes the base weights
    return TextClassifier(adapted, hidden, n_classes)


def deployable(model: TextClassifier, method: str) -> TextClassifier:
    """A plain-torch copy for inference and export: adapters merged, prompts prepended explicitly."""
    if method == "prompt":
        prompt = model.encoder.get_prompt(batch_size=1)[0]
        encoder: torch.nn.Module = PromptedEncoder(copy.deepcopy(model.encoder.get_base_model()), prompt)
    elif method in ("lora", "adapter"):
        encoder = copy.deepcopy(model.encoder).merge_and_unload()  # the PEFT model stays savable
    else:
        encoder = model.encoder
    plain = TextClassifier(encoder, model.head.in_features, model.head.out_features)
    plain.head.load_state_dict(model.head.state_dict())
    return plain.eval()


def trainable_share(model: torch.nn.Module) -> tuple[int, float]:
    """How many parameters train, and their share of all parameters."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, trainable / max(total, 1)
