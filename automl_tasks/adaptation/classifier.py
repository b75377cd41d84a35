"""The text classifier every adaptation method trains: encoder -> masked mean pooling -> linear head.

Mean pooling over the real tokens is how all-MiniLM-L6-v2 was trained to embed sentences,
so the frozen-encoder baseline starts from useful features. A prompt-tuned encoder returns
its virtual tokens first; the pooling drops them by position.
"""

from __future__ import annotations

import torch

from automl_tasks.core.base_model import masked_mean


class TextClassifier(torch.nn.Module):
    """Logits for (input_ids, attention_mask); the encoder may be a PEFT model."""

    def __init__(self, encoder: torch.nn.Module, hidden_size: int, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(hidden_size, n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self._pooled_logits(hidden, attention_mask)

    def _pooled_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = hidden[:, hidden.shape[1] - attention_mask.shape[1] :]  # drop prepended virtual tokens, if any
        return self.head(self.dropout(masked_mean(hidden, attention_mask)))

    def input_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The token embeddings the encoder starts from (what a white-box attack perturbs)."""
        return self.encoder.get_input_embeddings()(input_ids)

    def forward_embeddings(self, embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits from token embeddings instead of token ids (the trust report's attacks)."""
        hidden = self.encoder(inputs_embeds=embeddings, attention_mask=attention_mask).last_hidden_state
        return self._pooled_logits(hidden, attention_mask)


class PromptedEncoder(torch.nn.Module):
    """A plain encoder with learned prompt embeddings prepended: prompt tuning without PEFT's
    wrapper, whose batch size is a Python int that ONNX tracing would freeze."""

    def __init__(self, encoder: torch.nn.Module, prompt: torch.Tensor) -> None:
        super().__init__()
        self.encoder = encoder
        self.prompt = torch.nn.Parameter(prompt.detach().clone(), requires_grad=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ):  # -> BaseModelOutput
        embeds = self.encoder.get_input_embeddings()(input_ids) if inputs_embeds is None else inputs_embeds
        batch = embeds.size(0)
        prompts = self.prompt.unsqueeze(0).expand(batch, -1, -1)
        ones = torch.ones(batch, self.prompt.shape[0], dtype=attention_mask.dtype, device=attention_mask.device)
        return self.encoder(
            inputs_embeds=torch.cat([prompts, embeds], dim=1), attention_mask=torch.cat([ones, attention_mask], dim=1)
        )

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.encoder.get_input_embeddings()
