"""Request bodies: the size limit of every route, and the raw /predict body.

`BodyLimit` refuses a body over `LOOPML_MAX_BODY_BYTES` with 413: at once when its
Content-Length says so, and while it streams in when it has none (chunked transfer), so
an oversized body is never read into memory. `PredictBody` hands /predict its body
unparsed, so the served version's request model (`serving.request_model`) parses and
validates it in one pass; its JSON schema (the typed OpenAPI) is that request model's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar

from bentoml import IODescriptor
from bentoml.exceptions import BentoMLException

DEFAULT_MAX_BODY_BYTES = 5_000_000


def max_body_bytes() -> int:
    return int(os.environ.get("LOOPML_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES)))


def _too_large(size: str, limit: int) -> str:
    return f"request body of {size} bytes exceeds the limit of {limit}"


class BodyLimit:
    """ASGI middleware: 413 for a request body over the limit, before it is in memory."""

    def __init__(self, app: Any, on_refuse: Callable[[], None] = lambda: None) -> None:
        self.app, self.on_refuse, self.limit = app, on_refuse, max_body_bytes()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            self.on_refuse()
            body = json.dumps([{"error": _too_large(length.decode(), self.limit)}]).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # BentoML's endpoint wrapper answers it with this status
                    self.on_refuse()
                    raise BentoMLException(
                        _too_large(f"more than {self.limit}", self.limit),
                        error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    )
            return message

        await self.app(scope, limited, send)


class PredictBody(IODescriptor):
    """The /predict input: the body's bytes, parsed later by the answering version's model."""

    body: bytes = b""
    request_model: ClassVar[Any] = None  # the champion's RequestModel, set when the service starts

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> PredictBody:
        return cls.model_construct(body=await request.body())

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if cls.request_model is None:
            return {"type": "object", "properties": {"instances": {"type": "array", "items": {"type": "object"}}}}
        schema = cls.request_model.json_schema()
        instance = next(iter(schema.pop("$defs").values()))
        schema["properties"]["instances"]["items"] = instance
        return schema
