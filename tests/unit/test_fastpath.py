"""The raw-ASGI fast path: valid reservations are answered without the FastAPI app; everything
else reaches the app unchanged (body replayed), so errors keep one shape."""
import json

import pytest

from actors.domain.errors import OutOfStock
from serve_app import fastpath, reservations

pytestmark = pytest.mark.unit


class InnerApp:
    def __init__(self):
        self.calls = []

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.calls.append((scope["path"], message.get("body")))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


class App:  # holds the context the edge hands the fast path
    class state:
        ctx = object()


async def call(path: str, body: bytes, content_type: bytes = b"application/json", method: str = "POST"):
    inner = InnerApp()
    mw = fastpath.ReservationFastPath(inner, max_body_bytes=1000, ctx=App.state.ctx)
    sent = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "headers": [(b"content-type", content_type)], "app": App}
    await mw(scope, receive, send)
    status = sent[0]["status"]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return inner, status, payload, scope


VALID = json.dumps({"reservation_id": "r-1", "owner": "cart:1", "lines": [{"sku": "S-1", "quantity": 2}]}).encode()


async def test_a_valid_reservation_is_answered_without_the_app(monkeypatch):
    seen = {}

    async def fake_reserve(ctx, body, queue_token):
        seen.update(ctx=ctx, lines=[(l.sku, l.quantity) for l in body.lines], token=queue_token)
        return reservations.Held(body.reservation_id, 123.0, {"S-1": 8})

    monkeypatch.setattr(reservations, "reserve", fake_reserve)
    inner, status, payload, scope = await call("/inventory/reservations", VALID)
    assert inner.calls == [] and status == 201
    assert json.loads(payload) == {"reservation_id": "r-1", "state": "held", "expires_at": 123.0, "available": {"S-1": 8}}
    assert seen == {"ctx": App.state.ctx, "lines": [("S-1", 2)], "token": None}
    assert scope["route"].path == "/inventory/reservations"  # metrics label it like the route


async def test_a_refusal_is_the_same_problem_json_the_app_would_give(monkeypatch):
    async def sold_out(ctx, body, queue_token):
        raise OutOfStock(reservation_id=body.reservation_id, available={"S-1": 0})

    monkeypatch.setattr(reservations, "reserve", sold_out)
    inner, status, payload, _ = await call("/inventory/reservations", VALID)
    body = json.loads(payload)
    assert status == 409 and body["code"] == "out_of_stock" and body["available"] == {"S-1": 0}


@pytest.mark.parametrize("path, body, content_type, method", [
    ("/inventory/reservations", b'{"owner": "cart:1", "lines": []}', b"application/json", "POST"),  # invalid
    ("/inventory/reservations", VALID, b"text/plain", "POST"),  # not JSON
    ("/inventory/levels", b"", b"application/json", "GET"),  # another route
])
async def test_everything_else_reaches_the_app_with_its_body(path, body, content_type, method):
    inner, status, payload, _ = await call(path, body, content_type, method)
    assert status == 299 and payload == b"inner"
    assert inner.calls == [(path, body)]


async def test_a_chunked_body_past_the_limit_is_refused_with_413():
    inner, status, payload, _ = await call("/inventory/reservations", b"x" * 1001)
    assert status == 413 and json.loads(payload)["code"] == "too_large" and inner.calls == []
