"""Admin analytics: today's and past sales, the funnel, top products, customer insights and stock
alerts, from the rollups the Analytics actor keeps (`actors/analytics.py`). The same figures are
pushed live on the hub's `admin` topic."""
from __future__ import annotations

import time
from datetime import date, datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from actors.domain.analytics import GRAINS, bucket, totals
from actors.domain.errors import ValidationFailed
from serve_app.deps import Admin, Ctx
from serve_app.schemas import Sku
from storage import analytics_store as store

router = APIRouter(prefix="/admin/analytics", tags=["admin: analytics"])
Grain = Literal["minute", "hour", "day"]
MAX_BUCKETS = 2000
# epoch seconds from 1970 to 2100: beyond that a timestamp is not a date PostgreSQL can hold
Epoch = Annotated[float | None, Query(ge=0, le=4_102_444_800, description="Unix seconds, UTC")]


def _day_range(day: date | None) -> tuple[float, float]:
    start = (datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() if day is not None
             else bucket(time.time(), "day"))
    return start, start + 86_400


def _range(grain: str, since: float | None, until: float | None) -> tuple[float, float]:
    until = until if until is not None else time.time() + GRAINS[grain]
    since = since if since is not None else until - 60 * GRAINS[grain]
    if since >= until or (until - since) / GRAINS[grain] > MAX_BUCKETS:
        raise ValidationFailed(f"since must be before until, at most {MAX_BUCKETS} {grain}s apart")
    return since, until


@router.get("/summary")
async def summary(ctx: Ctx, admin: Admin, day: date | None = None) -> dict:
    """One UTC day (default today): orders, revenue, average order value, the funnel, payment
    failures, alerts, new vs returning, top products and the hourly series."""
    since, until = _day_range(day)
    return {"day": datetime.fromtimestamp(since, timezone.utc).date().isoformat(),
            **totals(await store.counts(ctx.pool, "day", since, until)),
            "top_products": await store.top_products(ctx.pool, "day", since, until, 10),
            "hourly": await store.series(ctx.pool, "hour", since, until)}


@router.get("/series")
async def series(ctx: Ctx, admin: Admin, grain: Grain = "minute", since: Epoch = None,
                 until: Epoch = None) -> list[dict]:
    """Every counter per bucket (epoch seconds, UTC) over [since, until)."""
    since, until = _range(grain, since, until)
    return await store.series(ctx.pool, grain, since, until)


@router.get("/products")
async def products(ctx: Ctx, admin: Admin, grain: Grain = "day", since: Epoch = None,
                   until: Epoch = None, limit: Annotated[int, Query(ge=1, le=100)] = 10,
                   sku: Annotated[list[Sku] | None, Query(max_length=100)] = None) -> list[dict]:
    """Top products by units over the range (or the figures of the given SKUs)."""
    since, until = _range(grain, since, until)
    return await store.top_products(ctx.pool, grain, since, until, limit, skus=sku)


@router.get("/customers")
async def customers(ctx: Ctx, admin: Admin, day: date | None = None,
                    limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict:
    """New vs returning (orders of one day), top customers by spend and the repeat rate (all time)."""
    since, until = _day_range(day)
    figures = totals(await store.counts(ctx.pool, "day", since, until))["customers"]
    return {**figures, **await store.customer_insights(ctx.pool, limit)}


@router.get("/alerts")
async def alerts(ctx: Ctx, admin: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict]:
    """Recent low-stock, sold-out and back-in-stock alerts, newest first."""
    return await store.recent_alerts(ctx.pool, limit)


@router.get("/live")
async def live(ctx: Ctx, admin: Admin) -> dict:
    """The newest live summary (what the hub's `admin` topic last pushed): today, the last 30
    minutes, top products of the last hour, active shoppers."""
    return await store.latest_summary(ctx.redis) or {}
