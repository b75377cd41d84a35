"""BentoML's own batching (`batchable=True`) against loopml's AdaptiveBatcher, nothing else
different: the same ONNX model, rows to arrays with the same code, a list of predictions
back. `LOOPML_BATCHING` picks `bentoml` or `adaptive`; `LOOPML_HOME`/`LOOPML_FAMILY` name
the model. Used by benchmarks/serving_batching.py.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import bentoml

from automl_tasks.core.settings import Workspace
from automl_tasks.families.loading import load_predictor
from serving.batching import AdaptiveBatcher
from serving.request_model import Features, RequestModel, features_runner, served_schema

BENTO_BATCHING = os.environ.get("LOOPML_BATCHING", "adaptive") == "bentoml"


@bentoml.service(name="batching_compare", logging={"access": {"enabled": False}})
class BatchingService:
    def __init__(self) -> None:
        predictor = load_predictor(Workspace.from_env(), os.environ["LOOPML_FAMILY"])
        self.request_model = RequestModel(served_schema(predictor))
        self.run = features_runner(
            predictor.predict_fn, served_schema(predictor), predictor.onnx_model, predictor.labels
        )
        self.batcher = AdaptiveBatcher(self.run, concat=Features.concat)
        gc.collect()
        gc.freeze()

    if BENTO_BATCHING:

        @bentoml.api(route="/predict", batchable=True, max_batch_size=512, max_latency_ms=10_000)
        async def predict(self, instances: list[dict[str, Any]]) -> list[int]:
            labels, _ = self.run(self.request_model.features(instances))
            return labels.tolist()

    else:

        @bentoml.api(route="/predict")
        async def predict(self, instances: list[dict[str, Any]]) -> list[int]:
            labels, _ = await self.batcher.infer(self.request_model.features(instances))
            return labels.tolist()
