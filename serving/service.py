"""The BentoML service of one model family: POST /predict answers with the champion.

The family is named by LOOPML_FAMILY; the workspace by LOOPML_HOME (see automl_tasks.settings).
Bad requests get HTTP 400 with a message saying what to fix; BentoML adds /healthz,
/livez, /readyz and /metrics.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
from bentoml.exceptions import BadInput

from automl_tasks.settings import Workspace
from serving.loader import BadRequest, load_served_model


@bentoml.service(name="loopml_family", traffic={"timeout": 60})
class FamilyService:
    """Serves `LOOPML_FAMILY@champion` from the MLflow registry."""

    def __init__(self) -> None:
        family = os.environ.get("LOOPML_FAMILY")
        if not family:
            raise RuntimeError("set LOOPML_FAMILY to the model family to serve (e.g. breast_cancer)")
        self.model = load_served_model(Workspace.from_env(), family)

    @bentoml.api(route="/predict")
    def predict(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
        """Predict one row per instance; each instance maps column name to value."""
        try:
            return self.model.predict(instances)
        except BadRequest as exc:
            raise BadInput(str(exc)) from exc

    @bentoml.api(route="/model")
    def model_info(self) -> dict[str, Any]:
        """Which version answers, and the columns it expects."""
        m = self.model
        return {
            "family": m.family,
            "version": m.version,
            "alias": m.alias,
            "runtime": m.runtime,
            "columns": {"numeric": list(m.schema.numeric), "categorical": list(m.schema.categorical)},
        }
