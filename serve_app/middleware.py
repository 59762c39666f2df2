"""Pure-ASGI middleware on the hot path: request id, body size limit, metrics.

Written as raw ASGI rather than `BaseHTTPMiddleware`, which costs a task and a stream per request.
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid

from storage.logs import request_id_var

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def safe_request_id(value: bytes) -> str | None:
    """A caller's X-Request-ID if it is one we keep (it goes into logs), else None."""
    candidate = value.decode("latin-1")
    return candidate if _SAFE_ID.match(candidate) else None


class RequestContextMiddleware:
    """Gives every request an id (the caller's `X-Request-ID` if sane, else the one Serve's ingress
    assigned), enforces a body limit from Content-Length (413 before parsing), and records latency
    by route template. Serve itself echoes X-Request-ID on every response, in every ingress mode.
    A request cancelled before its answer began (a timeout, the client gone) is not counted here: it
    has no status of its own, and whoever answers for it counts it (the replica listener's 503;
    Serve's metrics for its own timeouts)."""

    def __init__(self, app, *, max_body_bytes: int, metrics=None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = None
        length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = safe_request_id(value) or rid
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
        rid = rid or uuid.uuid4().hex
        token = request_id_var.set(rid)
        status_holder = [500]
        started = time.perf_counter()
        cancelled = answered = False

        if length is not None and (length < 0 or length > self.max_body_bytes):
            from serve_app.errors import problem

            status_holder[0] = 413 if length > 0 else 400
            response = problem(status_holder[0], "too_large" if length > 0 else "bad_request",
                               f"The request body exceeds {self.max_body_bytes} bytes." if length > 0
                               else "Invalid Content-Length.", scope.get("path"))
            try:
                return await response(scope, receive, send)
            finally:
                request_id_var.reset(token)

        async def send_with_id(message):
            nonlocal answered
            if message["type"] == "http.response.start":
                status_holder[0], answered = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            request_id_var.reset(token)
            if self.metrics is not None and (answered or not cancelled):
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                self.metrics.observe_request(scope["method"], template, status_holder[0], time.perf_counter() - started)
