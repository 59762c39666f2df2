"""The flash-sale hot path in raw ASGI: `POST /inventory/reservations` without FastAPI's routing,
dependency solving and response-model layers.

Measured on the 2-core box, those layers cost more per request than the reservation itself (the
replica, not the inventory owner, is what limits a flash sale). The fast path validates with the
same pydantic model and runs the same flow (`serve_app/reservations.py`); anything it does not
handle itself (invalid or non-JSON bodies, other routes) goes to the FastAPI app unchanged, with
the body replayed, so errors keep their one problem+json shape and OpenAPI stays the contract.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

from pydantic import ValidationError

from actors.domain.errors import SurgeError
from serve_app import reservations
from serve_app.errors import problem, surge_problem, unexpected_problem
from serve_app.schemas import ReserveRequest

PATH = "/inventory/reservations"
_ROUTE = SimpleNamespace(path=PATH)  # lets the metrics middleware label the route as FastAPI would
_JSON_HEADERS = [(b"content-type", b"application/json")]


class ReservationFastPath:
    """Runs outside FastAPI (`serve_app.app.ApiEdge`), so it is handed the app's context."""

    def __init__(self, app, *, max_body_bytes: int, ctx):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.ctx = ctx

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        content_type = queue_token = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"x-queue-token":
                queue_token = value.decode("latin-1")
        try:
            body = await _read_body(receive, self.max_body_bytes)
        except _TooLarge:
            return await problem(413, "too_large", f"The request body exceeds {self.max_body_bytes} bytes.",
                                 PATH)(scope, receive, send)
        except _Disconnected:
            return None
        if not (content_type or b"").startswith(b"application/json"):
            return await self.app(scope, _replay(body, receive), send)
        try:
            request = ReserveRequest.model_validate_json(body)
        except ValidationError:
            return await self.app(scope, _replay(body, receive), send)  # FastAPI answers the 422
        scope["route"] = _ROUTE
        try:
            outcome = await reservations.reserve(self.ctx, request, queue_token)
        except SurgeError as exc:
            return await surge_problem(exc, PATH)(scope, receive, send)
        except Exception as exc:  # the same mapping as the app's handlers: 503 for dependencies, else 500
            return await unexpected_problem(exc, PATH)(scope, receive, send)
        if isinstance(outcome, reservations.Queued):
            status, headers = 202, [*_JSON_HEADERS, (b"retry-after", b"1")]
        else:
            status, headers = 201, _JSON_HEADERS
        payload = json.dumps(outcome.body(), separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(receive, limit: int) -> bytes:
    """The whole body; `_TooLarge` past `limit` (a chunked body has no Content-Length to check first)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
