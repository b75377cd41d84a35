"""The BentoML service of one model family.

POST /predict answers with `champion` (or, for a configured canary share, `challenger`),
follows alias moves without a restart, batches concurrent requests, logs every
prediction to the inference log and exports per-variant Prometheus metrics. POST /explain
returns SHAP attributions; POST /feedback stores
ground truth for an earlier answer; POST /model says which versions answer. Bad requests get a
4xx with a message saying what to fix. Configuration: see `serving.settings`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from http import HTTPStatus
from typing import Any

import bentoml
from bentoml.exceptions import BadInput, BentoMLException

from automl_tasks.monitoring import InferenceLog, InferenceRecord
from automl_tasks.settings import Workspace
from serving.live import LiveModels
from serving.loader import BadRequest, ServedModel
from serving.settings import ServingSettings

REQUESTS = bentoml.metrics.Counter(
    name="loopml_predictions_total",
    documentation="Rows predicted, by variant and version",
    labelnames=["variant", "version"],
)
REJECTED = bentoml.metrics.Counter(
    name="loopml_rejected_requests_total", documentation="Requests refused with a 4xx", labelnames=["reason"]
)
LATENCY = bentoml.metrics.Histogram(
    name="loopml_request_seconds",
    documentation="Request latency inside the service, by variant",
    labelnames=["variant"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def _refuse(reason: str, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> BentoMLException:
    REJECTED.labels(reason=reason).inc()
    if status == HTTPStatus.BAD_REQUEST:
        return BadInput(message)
    return BentoMLException(message, error_code=status)


@bentoml.service(
    name="loopml_family",
    traffic={"timeout": 60},
    # per-request access lines cost ~10% of a small model's throughput; the inference log
    # already records every prediction. LOOPML_ACCESS_LOG=1 turns them back on.
    logging={"access": {"enabled": os.environ.get("LOOPML_ACCESS_LOG", "0") == "1"}},
)
class FamilyService:
    """Serves `LOOPML_FAMILY` from the MLflow registry of the workspace `LOOPML_HOME`."""

    def __init__(self) -> None:
        self.settings = ServingSettings.from_env()
        self.ws = Workspace.from_env()
        self.models = LiveModels(
            self.ws, self.settings.family, canary_share=self.settings.canary_share, reload_s=self.settings.reload_s
        )
        self.log = InferenceLog.for_family(self.ws.home, self.settings.family) if self.settings.inference_log else None
        # the first SHAP call imports shap and JIT-compiles numba code (~10 s): do it off the request path
        threading.Thread(target=self._warm_explainer, daemon=True, name="loopml-explain-warmup").start()

    def _warm_explainer(self) -> None:
        try:
            explainer = self.models.champion.explainer()
            explainer.explain(explainer.background.head(1))
        except Exception as exc:  # /explain will report the problem when it is called
            logging.getLogger(__name__).info("explainer warm-up skipped: %s", exc)

    def _admit(self, ctx: bentoml.Context) -> None:
        headers = ctx.request.headers
        if self.settings.api_key:
            given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
            if given != self.settings.api_key:
                raise _refuse("auth", "missing or wrong API key (send it as X-API-Key)", HTTPStatus.UNAUTHORIZED)
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.settings.max_body_bytes:
            raise _refuse(
                "too_large",
                f"request body of {length} bytes exceeds the limit of {self.settings.max_body_bytes}",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )

    def _validate(self, model: ServedModel, instances: Any):
        try:
            return model.to_frame(instances)
        except BadRequest as exc:
            raise _refuse("invalid", str(exc)) from exc

    @bentoml.api(route="/predict")
    async def predict(self, instances: list[dict[str, Any]], ctx: bentoml.Context) -> dict[str, Any]:
        """Predict one row per instance; each instance maps column name to value."""
        started = time.perf_counter()
        self._admit(ctx)
        model, variant = self.models.pick()
        frame = self._validate(model, instances)
        labels, proba = await model.batcher.infer(frame)
        answer = model.answer(labels, proba)
        answer["model"]["variant"] = variant
        if self.log is not None:
            request_id, now = uuid.uuid4().hex, time.time()
            self.log.append(
                InferenceRecord(request_id, model.version, variant, row, out, now)
                for row, out in zip(instances, answer["predictions"], strict=True)
            )
            answer["request_id"] = request_id
        REQUESTS.labels(variant=variant, version=model.version).inc(len(instances))
        LATENCY.labels(variant=variant).observe(time.perf_counter() - started)
        return answer

    @bentoml.api(route="/explain")
    def explain(self, instances: list[dict[str, Any]], ctx: bentoml.Context) -> dict[str, Any]:
        """SHAP attributions per input column for each instance (champion model)."""
        self._admit(ctx)
        model = self.models.champion
        frame = self._validate(model, instances)
        if len(frame) > 20:
            raise _refuse("too_large", f"explain at most 20 instances per request; got {len(frame)}")
        try:
            explanations = model.explainer().explain(frame)
        except BadRequest as exc:
            raise _refuse("invalid", str(exc)) from exc
        return {"explanations": explanations, "model": {"family": model.family, "version": model.version}}

    @bentoml.api(route="/feedback")
    def feedback(self, request_id: str, labels: list[Any], ctx: bentoml.Context) -> dict[str, Any]:
        """Ground truth for an earlier /predict answer: one label per instance, in order.

        Labelled windows let the drift check measure concept drift and let retraining learn
        from recent data.
        """
        self._admit(ctx)
        if self.log is None:
            raise _refuse("no_log", "the inference log is off (LOOPML_INFERENCE_LOG=0); feedback cannot be stored")
        try:
            stored = self.log.add_labels(request_id, labels)
        except ValueError as exc:
            status = HTTPStatus.NOT_FOUND if "no logged request" in str(exc) else HTTPStatus.BAD_REQUEST
            raise _refuse("feedback", str(exc), status) from exc
        return {"request_id": request_id, "labelled_rows": stored}

    @bentoml.api(route="/model")
    def model_info(self, ctx: bentoml.Context) -> dict[str, Any]:
        """Which versions answer, the canary share, and the columns each request must carry."""
        self._admit(ctx)
        champion, challenger = self.models.champion, self.models.challenger
        return {
            "family": champion.family,
            "champion": {"version": champion.version, "runtime": champion.runtime},
            "challenger": None
            if challenger is None
            else {"version": challenger.version, "runtime": challenger.runtime},
            "canary_share": self.settings.canary_share,
            "columns": {"numeric": list(champion.schema.numeric), "categorical": list(champion.schema.categorical)},
        }
