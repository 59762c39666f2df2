"""Liveness, readiness and metrics."""
from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from actors.domain.errors import Unavailable
from serve_app.deps import Ctx
from serve_app.errors import PROBLEM_JSON

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    """Alive: the replica answers. Checks nothing else, so it stays cheap."""
    return {"status": "ok"}


async def _check(coro, timeout_s: float = 2.0) -> dict:
    try:
        await asyncio.wait_for(coro, timeout_s)
        return {"ok": True}
    except Exception as exc:  # readiness reports every failure as data, never raises
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}


@router.get("/readyz", responses={503: {"content": {PROBLEM_JSON: {}}}})
async def readyz(ctx: Ctx):
    """Ready: PostgreSQL, Valkey and every owner actor answer within a couple of seconds."""
    database, cache, owners = await asyncio.gather(
        _check(ctx.pool.fetchval("select 1")),
        _check(ctx.redis.ping()) if ctx.redis is not None else asyncio.sleep(0, {"ok": False, "error": "not configured"}),
        ctx.directory.ping_all(timeout_s=2.0),
    )
    checks = {"database": database, "cache": cache, "owners": owners}
    failing = [name for name, ok in (("database", database["ok"]), ("cache", cache["ok"]),
                                     ("owners", all(o["ok"] and o.get("ready", True) for o in owners.values()))) if not ok]
    if not failing:
        return {"status": "ready", "checks": checks}
    return JSONResponse(
        {"type": "urn:surge:problem:unavailable", "title": "Service unavailable", "status": 503,
         "detail": "Not ready: " + ", ".join(failing), "code": "unavailable", "checks": checks},
        status_code=503, media_type=PROBLEM_JSON, headers={"Retry-After": "2"},
    )


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(ctx: Ctx) -> PlainTextResponse:
    """Prometheus text from this node's Ray metrics agent (Serve's, Ray's and Surge's series)."""
    if not ctx.config.metrics_url:
        raise Unavailable("metrics export is not configured on this node")
    async with httpx.AsyncClient(timeout=3.0) as client:
        resp = await client.get(ctx.config.metrics_url)
    resp.raise_for_status()
    return PlainTextResponse(resp.text, media_type="text/plain; version=0.0.4; charset=utf-8")
