"""The baseline: how most stores sell stock. Plain FastAPI + asyncpg on uvicorn, one row per SKU.

Endpoints:
- ``GET /healthz`` -> 200 ``{"status": "ok"}``; never touches the database.
- ``POST /buy`` ``{"sku": str, "qty": int >= 1}`` -> one statement per request,
  ``UPDATE baseline_stock SET stock = stock - $2 WHERE sku = $1 AND stock >= $2 RETURNING stock``;
  200 ``{"sku", "remaining"}`` when it sold, 409 ``application/problem+json`` when no row was
  updated (sold out; an unknown SKU answers the same, since telling them apart would cost a
  second round trip the baseline does not make).
- ``POST /reset`` ``{"sku": str, "stock": int >= 0}`` -> creates ``baseline_stock`` if needed and
  sets the SKU's stock; 200 ``{"sku", "stock"}``. (The table is also created at startup, so
  ``/buy`` before any reset answers 409 rather than failing.)

The DSN comes from ``BASELINE_DATABASE_URL``; the asyncpg pool holds ``BASELINE_POOL_SIZE``
connections (default 20), opened at startup (an unreachable database fails startup).
Without a DSN the app still starts: ``/healthz`` works and the
database endpoints answer 503 problem+json.
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

PROBLEM_JSON = "application/problem+json"
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS baseline_stock (
    sku   text PRIMARY KEY,
    stock integer NOT NULL CHECK (stock >= 0)
)"""
BUY = "UPDATE baseline_stock SET stock = stock - $2 WHERE sku = $1 AND stock >= $2 RETURNING stock"
RESET = """
INSERT INTO baseline_stock (sku, stock) VALUES ($1, $2)
ON CONFLICT (sku) DO UPDATE SET stock = EXCLUDED.stock"""


class BuyIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(ge=1, le=1000)


class ResetIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    stock: int = Field(ge=0)


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    dsn = os.environ.get("BASELINE_DATABASE_URL")
    size = int(os.environ.get("BASELINE_POOL_SIZE", "20"))
    app.state.pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size) if dsn else None
    if app.state.pool is not None:
        await app.state.pool.execute(CREATE_TABLE)
    try:
        yield
    finally:
        if app.state.pool is not None:
            await app.state.pool.close()


app = FastAPI(title="baseline store", lifespan=lifespan)


def _pool(request: Request) -> asyncpg.Pool | None:
    return request.app.state.pool


_NO_DB = ("Database not configured", "set BASELINE_DATABASE_URL to use this endpoint")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/buy", response_model=None)
async def buy(body: BuyIn, request: Request) -> dict[str, Any] | JSONResponse:
    pool = _pool(request)
    if pool is None:
        return problem(503, *_NO_DB)
    remaining = await pool.fetchval(BUY, body.sku, body.qty)
    if remaining is None:
        return problem(409, "Sold out", f"not enough stock of {body.sku!r} for {body.qty}", sku=body.sku)
    return {"sku": body.sku, "remaining": remaining}


@app.post("/reset", response_model=None)
async def reset(body: ResetIn, request: Request) -> dict[str, Any] | JSONResponse:
    pool = _pool(request)
    if pool is None:
        return problem(503, *_NO_DB)
    async with pool.acquire() as conn:
        await conn.execute(CREATE_TABLE)
        await conn.execute(RESET, body.sku, body.stock)
    return {"sku": body.sku, "stock": body.stock}
