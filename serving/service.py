"""The BentoML service of one model family.

POST /predict answers with `champion` (or, for a configured canary share, `challenger`),
follows alias moves without a restart, batches concurrent requests, logs every
prediction to the inference log and exports per-variant Prometheus metrics. POST /explain
returns SHAP attributions; POST /feedback stores
ground truth for an earlier answer; POST /model says which versions answer. Bad requests get a
4xx with a message saying what to fix. Configuration: see `serving.settings`.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import uuid
from http import HTTPStatus
from typing import Any

import bentoml
from bentoml.exceptions import BadInput, BentoMLException
from pydantic import BaseModel

from automl_tasks.core.settings import Workspace
from automl_tasks.monitoring import InferenceRecord, open_inference_log
from serving.batching import AdaptiveBatcher
from serving.body import BodyLimit, PredictBody
from serving.image import PACKAGES_ENV, serving_image
from serving.live import LiveModels
from serving.loader import BadRequest, ServedModel
from serving.log_writer import GroupLog
from serving.request_model import Features, RequestModel, features_runner, served_schema
from serving.settings import ServingSettings
from serving.text_model import TextBatch, TextServedModel

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


class PredictResponse(BaseModel):
    """The /predict answer. A pydantic model, not a dict: BentoML builds a JSON schema of a
    dict-typed output for every response (`IOMixin.mime_type`), ~20% of a small request."""

    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    model: dict[str, str]
    request_id: str | None = None
    notes: list[str] | None = None  # e.g. which texts were cut to the model's token limit


class _LeanPath:
    """What /predict needs of one served version: its request model and its batcher."""

    def __init__(self, model: ServedModel | TextServedModel, max_rows: int) -> None:
        self.model = model
        # The hand-written batcher, not BentoML's `batchable=True`: see docs/BENCHMARKS.md
        # ("Serving"): it runs a lone request at once, while BentoML's dispatcher queues it.
        if isinstance(model, TextServedModel):
            self.request_model: Any = model.request_model()
            run, concat = model.run, TextBatch.concat
        else:
            schema = served_schema(model)
            self.request_model = RequestModel(schema)
            run = features_runner(model.predict_fn, schema, model.onnx_model, model.labels)
            concat = Features.concat
        self.batcher = AdaptiveBatcher(run, max_rows=max_rows, inline_rows=model.inline_rows, concat=concat)


@bentoml.service(
    name="loopml_family",
    # the Bento's image: what the family's models need, pinned from the lock (serving/image.py)
    image=serving_image(os.environ.get(PACKAGES_ENV, "")),
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
        self.log = open_inference_log(self.ws, self.settings.family) if self.settings.inference_log else None
        self.group_log = GroupLog(self.log) if self.log is not None else None
        self._paths: dict[int, _LeanPath] = {}
        PredictBody.request_model = self._path(self.models.champion).request_model  # typed OpenAPI
        # the first SHAP call imports shap and JIT-compiles numba code (~10 s, both cores busy):
        # do it before /readyz says ready, so it never competes with served requests
        self._warm = threading.Event()
        self._frozen_at_first_request = False
        if self.settings.explain_warmup:
            threading.Thread(target=self._warm_explainer, daemon=True, name="loopml-explain-warmup").start()
        else:
            self._ready()

    def __is_ready__(self) -> bool:
        """BentoML's readiness hook: /readyz answers 503 until the explainer is warm."""
        return self._warm.is_set()

    def _ready(self) -> None:
        # Everything loaded so far lives as long as the process: move it out of the cyclic
        # GC's reach. Without this, each full collection walks the ~200k objects of
        # BentoML, pydantic and OpenTelemetry and stalls a request for 50-250 ms on this
        # machine (the p99 of a BentoML service that does nothing; docs/BENCHMARKS.md).
        gc.collect()
        gc.freeze()
        self._warm.set()

    def _freeze_framework(self) -> None:
        # once more at the first request: BentoML builds its app and imports lazily after
        # __init__ (~100k more objects, measured by benchmarks/bentoml_gc_stalls.py)
        self._frozen_at_first_request = True
        gc.freeze()

    def _warm_explainer(self) -> None:
        try:
            explainer = self.models.champion.explainer()
            explainer.explain(explainer.background.head(1))
        except Exception as exc:  # /explain will report the problem when it is called
            logging.getLogger(__name__).info("explainer warm-up skipped: %s", exc)
        finally:
            self._ready()

    def _path(self, model: ServedModel) -> _LeanPath:
        path = self._paths.get(id(model))
        if path is None or path.model is not model:
            live = {id(m) for m in (self.models.champion, self.models.challenger) if m is not None}
            self._paths = {k: v for k, v in self._paths.items() if k in live}  # forget replaced versions
            path = self._paths[id(model)] = _LeanPath(model, self.settings.max_batch_rows)
        return path

    def _admit(self, ctx: bentoml.Context) -> None:
        headers = ctx.request.headers
        if self.settings.api_key:
            given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
            if given != self.settings.api_key:
                raise _refuse("auth", "missing or wrong API key (send it as X-API-Key)", HTTPStatus.UNAUTHORIZED)

    def _validate(self, model: ServedModel, instances: Any):
        try:
            return model.to_frame(instances)
        except BadRequest as exc:
            raise _refuse("invalid", str(exc)) from exc

    @bentoml.api(route="/predict", input_spec=PredictBody)
    async def predict(self, body: bytes, ctx: bentoml.Context) -> PredictResponse:
        """Predict one row per instance; each instance maps column name to value.

        The body is validated in one pass by the request model of the answering version
        (generated from its MLflow signature); the answer is sent after its rows are in
        the inference log (one transaction shared with concurrent requests)."""
        started = time.perf_counter()
        if not self._frozen_at_first_request:
            self._freeze_framework()
        self._admit(ctx)
        model, variant = self.models.pick()
        path = self._path(model)
        try:
            instances, features = path.request_model.parse(body)
        except BadRequest as exc:
            raise _refuse("invalid", str(exc)) from exc
        labels, proba = await path.batcher.infer(features)
        answer = model.answer(labels, proba)
        answer["model"]["variant"] = variant
        notes = model.notes(features)
        if notes:
            answer["notes"] = notes
        if self.group_log is not None:
            request_id, now = uuid.uuid4().hex, time.time()
            await self.group_log.append(
                InferenceRecord(request_id, model.version, variant, row, out, now)
                for row, out in zip(instances, answer["predictions"], strict=True)
            )
            answer["request_id"] = request_id
        REQUESTS.labels(variant=variant, version=model.version).inc(len(instances))
        LATENCY.labels(variant=variant).observe(time.perf_counter() - started)
        return PredictResponse(**answer)

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
            "columns": {"text": ["text"]}
            if champion.schema is None
            else {
                "numeric": list(champion.schema.input_numeric),
                "categorical": list(champion.schema.input_categorical),
            },
        }


# every route: a body over LOOPML_MAX_BODY_BYTES is refused with 413 while it streams in
FamilyService.add_asgi_middleware(BodyLimit, on_refuse=REJECTED.labels(reason="too_large").inc)
