"""Serving configuration, read once from the environment when the service starts."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ServingSettings:
    """Knobs of one family's service (all optional but the family)."""

    family: str
    canary_share: float = 0.0  # share of requests answered by `challenger`
    api_key: str = ""  # empty: no authentication
    reload_s: float = 5.0  # how often the registry aliases are checked
    max_body_bytes: int = 5_000_000
    max_batch_rows: int = 512
    inference_log: bool = True
    explain_warmup: bool = True  # warm the SHAP explainer before /readyz says ready (~10 s)

    @classmethod
    def from_env(cls) -> ServingSettings:
        env = os.environ
        family = env.get("LOOPML_FAMILY", "")
        if not family:
            raise RuntimeError("set LOOPML_FAMILY to the model family to serve (e.g. breast_cancer)")
        settings = cls(
            family=family,
            canary_share=float(env.get("LOOPML_CANARY_SHARE", "0")),
            api_key=env.get("LOOPML_API_KEY", ""),
            reload_s=float(env.get("LOOPML_RELOAD_S", "5")),
            max_body_bytes=int(env.get("LOOPML_MAX_BODY_BYTES", "5000000")),
            max_batch_rows=int(env.get("LOOPML_MAX_BATCH_ROWS", "512")),
            inference_log=env.get("LOOPML_INFERENCE_LOG", "1") not in ("0", "false", "False"),
            explain_warmup=env.get("LOOPML_EXPLAIN_WARMUP", "1") not in ("0", "false", "False"),
        )
        if not 0.0 <= settings.canary_share <= 1.0:
            raise RuntimeError(f"LOOPML_CANARY_SHARE must be in [0, 1]; got {settings.canary_share}")
        return settings
