"""A BentoML service that does no work: the framework's own floor for the serving benchmark.

Same route and request type as loopml's /predict; it answers a constant.
"""

from __future__ import annotations

from typing import Any

import bentoml


@bentoml.service(name="bentoml_floor", logging={"access": {"enabled": False}})
class FloorService:
    @bentoml.api(route="/predict")
    async def predict(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
        return {"predictions": [0] * len(instances)}
