"""CORS comes from settings: configured origins get credentialed CORS answers, others none."""
from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from serve_app.app import create_fastapi_app
from serve_app.settings import ServeSettings

pytestmark = pytest.mark.unit


def client(origins: list[str]) -> httpx.AsyncClient:
    ctx = SimpleNamespace(config=SimpleNamespace(serve=ServeSettings(cors_origins=origins), version="test"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_fastapi_app(ctx)), base_url="http://t")


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
