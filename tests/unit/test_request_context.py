"""The request-context middleware's metrics: every answered request is counted once, a cancelled one
(no answer began) is left to whoever answers for it."""
from __future__ import annotations

import asyncio

import pytest

from serve_app.middleware import RequestContextMiddleware
from tests.unit.fakes import ObservedMetrics

pytestmark = pytest.mark.unit


async def call(app, path: str = "/x") -> list[dict]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "path": path, "method": "POST", "headers": []}, receive, send)
    return sent


async def answers(scope, receive, send):
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def hangs(scope, receive, send):
    await asyncio.sleep(10)


async def test_an_answered_request_is_counted_with_its_status_and_a_cancelled_one_is_not():
    metrics = ObservedMetrics()
    await call(RequestContextMiddleware(answers, max_body_bytes=1024, metrics=metrics))
    assert metrics.calls == [("POST", "unmatched", 201)]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await call(RequestContextMiddleware(hangs, max_body_bytes=1024, metrics=metrics))
    assert metrics.calls == [("POST", "unmatched", 201)]


async def test_a_request_that_fails_before_answering_is_counted_as_a_500():
    metrics = ObservedMetrics()

    async def fails(scope, receive, send):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await call(RequestContextMiddleware(fails, max_body_bytes=1024, metrics=metrics))
    assert metrics.calls == [("POST", "unmatched", 500)]
