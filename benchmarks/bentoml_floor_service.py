"""A BentoML service that does no work: the framework's own floor for the serving benchmark.

Same route as loopml's /predict; it answers a constant. `LOOPML_FLOOR_TUNED=1` applies
what loopml's service does against the framework's stalls (docs/BENCHMARKS.md, "Serving"):
`gc.freeze()` when initialised and again at the first request, and a pydantic response model instead of a dict (BentoML
builds a JSON schema of a dict-typed output for every response).
"""

from __future__ import annotations

import gc
import os
from typing import Any

import bentoml
from pydantic import BaseModel

TUNED = os.environ.get("LOOPML_FLOOR_TUNED") == "1"


class Answer(BaseModel):
    predictions: list[int]


@bentoml.service(name="bentoml_floor", logging={"access": {"enabled": False}})
class FloorService:
    def __init__(self) -> None:
        self.freeze_at_first = TUNED
        if TUNED:
            gc.collect()
            gc.freeze()

    if TUNED:

        @bentoml.api(route="/predict")
        async def predict(self, instances: list[dict[str, Any]]) -> Answer:
            if self.freeze_at_first:
                self.freeze_at_first = False
                gc.freeze()
            return Answer(predictions=[0] * len(instances))

    else:

        @bentoml.api(route="/predict")
        async def predict(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
            return {"predictions": [0] * len(instances)}
