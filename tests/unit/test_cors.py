"""CORS comes from settings: configured origins get credentialed CORS answers, others none."""
from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from serve_app.app import create_api
from serve_app.settings import ServeSettings

pytestmark = pytest.mark.unit


def client(origins: list[str]) -> httpx.AsyncClient:
    ctx = SimpleNamespace(config=SimpleNamespace(serve=ServeSettings(cors_origins=origins), version="test"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api(ctx)), base_url="http://t")


def preflight(origin: str) -> dict:
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"}


async def test_a_configured_origin_gets_a_credentialed_preflight_answer():
    async with client(["https://shop.example"]) as c:
        r = await c.options("/auth/token", headers=preflight("https://shop.example"))
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in r.headers["access-control-allow-headers"].lower()


async def test_another_origin_gets_no_cors_headers():
    async with client(["https://shop.example"]) as c:
        r = await c.options("/auth/token", headers=preflight("https://evil.example"))
        simple = await c.get("/openapi.json", headers={"Origin": "https://evil.example"})
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in simple.headers


async def test_without_configured_origins_there_is_no_cors_at_all():
    async with client([]) as c:
        r = await c.options("/auth/token", headers=preflight("https://shop.example"))
    assert "access-control-allow-origin" not in r.headers


async def test_an_answer_of_the_reservation_fast_path_carries_the_cors_headers_too(monkeypatch):
    """The fast path answers before FastAPI; CORS wraps it all the same (ApiEdge's order)."""
    from serve_app import reservations

    async def held(ctx, body, queue_token):
        return reservations.Held(body.reservation_id, None, {"S-1": 3})

    monkeypatch.setattr(reservations, "reserve", held)
    async with client(["https://shop.example"]) as c:
        r = await c.post("/inventory/reservations", headers={"Origin": "https://shop.example"},
                         json={"reservation_id": "r-1", "owner": "cart:1", "lines": [{"sku": "S-1", "quantity": 1}]})
    assert r.status_code == 201 and r.json()["available"] == {"S-1": 3}
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
