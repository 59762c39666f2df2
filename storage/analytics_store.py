"""Analytics rollups in PostgreSQL (migration 0006), product-view counters in Valkey, and the
`surge:analytics` stream on which the Analytics actor publishes live summaries for the hub.

The Analytics actor writes a batch in one transaction on one connection: `mark_seen` (the ids that
were new), then the increments of those only (`add_counts`, `add_products`, `upsert_customers`,
`add_alerts`). A redelivered event finds its id in `analytics_seen` and adds nothing.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import asyncpg

ANALYTICS_STREAM = "surge:analytics"
VIEWS_KEY = "surge:views:{grain}:{bucket}"
VIEW_GRAINS = {"minute": 60, "hour": 3600, "day": 86_400}
VIEWS_TTL_S = 3 * 86_400


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


# --- product views: a cheap counter anyone may bump (the hub, per product subscription; a catalog page)
async def record_product_views(redis, views: Mapping[str, int], now: float) -> None:
    """One round trip: the total per grain bucket, and per SKU for the minute (top viewed now)."""
    total = sum(views.values())
    pipe = redis.pipeline(transaction=False)
    for grain, size in VIEW_GRAINS.items():
        key = VIEWS_KEY.format(grain=grain, bucket=int(now // size) * size)
        pipe.hincrby(key, "_total", total)
        if grain == "minute":
            for sku, n in views.items():
                pipe.hincrby(key, sku, n)
        pipe.expire(key, VIEWS_TTL_S)
    await pipe.execute()


async def product_views(redis, grain: str, buckets: list[int]) -> dict[int, int]:
    pipe = redis.pipeline(transaction=False)
    for b in buckets:
        pipe.hget(VIEWS_KEY.format(grain=grain, bucket=b), "_total")
    return {b: int(v or 0) for b, v in zip(buckets, await pipe.execute())}


# --- the rollup write (one transaction, on the caller's connection)
async def mark_seen(conn, event_ids: list[str]) -> set[str]:
    """Record the ids; returns those not seen before."""
    rows = await conn.fetch("insert into analytics_seen (event_id) select unnest($1::uuid[]) "
                            "on conflict do nothing returning event_id::text", [uuid.UUID(e) for e in event_ids])
    return {r["event_id"] for r in rows}


async def add_counts(conn, counts: Mapping[tuple[str, int, str], int]) -> None:
    if not counts:
        return
    keys = list(counts)
    await conn.execute(
        """insert into analytics_counts as c (grain, bucket, metric, value)
           select g, to_timestamp(b), m, v from unnest($1::text[], $2::int8[], $3::text[], $4::int8[]) as x(g, b, m, v)
           on conflict (grain, bucket, metric) do update set value = c.value + excluded.value""",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [counts[k] for k in keys])


async def set_views(conn, grain: str, views: Mapping[int, int]) -> None:
    """Copy Valkey's view counters (totals so far): set, not added, so copying again is harmless."""
    buckets = [b for b, v in views.items() if v]
    if buckets:
        await conn.execute(
            """insert into analytics_counts as c (grain, bucket, metric, value)
               select $1, to_timestamp(b), 'product_views', v from unnest($2::int8[], $3::int8[]) as x(b, v)
               on conflict (grain, bucket, metric) do update set value = greatest(c.value, excluded.value)""",
            grain, buckets, [views[b] for b in buckets])


async def add_products(conn, products: Mapping[tuple[str, int, str], list]) -> None:
    if not products:
        return
    keys = list(products)
    await conn.execute(
        """insert into analytics_products as p (grain, bucket, sku, units, revenue_minor, currency)
           select g, to_timestamp(b), s, u, r, c
           from unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::text[]) as x(g, b, s, u, r, c)
           on conflict (grain, bucket, sku) do update
           set units = p.units + excluded.units, revenue_minor = p.revenue_minor + excluded.revenue_minor""",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [products[k][0] for k in keys],
        [products[k][1] for k in keys], [products[k][2] for k in keys])


async def upsert_customers(conn, totals: Mapping[str, dict[str, Any]]) -> dict[str, int]:
    """Add this batch's paid orders per customer; returns each one's paid orders *before* the batch."""
    if not totals:
        return {}
    keys = list(totals)
    rows = await conn.fetch(
        """insert into analytics_customers as c (customer_key, customer_id, email, orders, spent_minor, currency,
                                                 first_order_at, last_order_at)
           select k, i, e, o, s, cur, to_timestamp(f), to_timestamp(l)
           from unnest($1::text[], $2::uuid[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::float8[], $8::float8[])
                as x(k, i, e, o, s, cur, f, l)
           on conflict (customer_key) do update set
               orders = c.orders + excluded.orders, spent_minor = c.spent_minor + excluded.spent_minor,
               email = excluded.email, first_order_at = least(c.first_order_at, excluded.first_order_at),
               last_order_at = greatest(c.last_order_at, excluded.last_order_at)
           returning customer_key, orders""",
        keys, [uuid.UUID(totals[k]["customer_id"]) if totals[k]["customer_id"] else None for k in keys],
        [totals[k]["email"] for k in keys], [totals[k]["orders"] for k in keys], [totals[k]["spent"] for k in keys],
        [totals[k]["currency"] for k in keys], [totals[k]["first"] for k in keys], [totals[k]["last"] for k in keys])
    return {r["customer_key"]: r["orders"] - totals[r["customer_key"]]["orders"] for r in rows}


async def add_alerts(conn, alerts: list[tuple[str, str, str, int, float]]) -> None:
    if alerts:
        await conn.execute(
            """insert into analytics_alerts (event_id, sku, kind, available, at)
               select e, s, k, a, to_timestamp(t) from unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::float8[])
                    as x(e, s, k, a, t)
               on conflict do nothing""",
            [uuid.UUID(a[0]) for a in alerts], [a[1] for a in alerts], [a[2] for a in alerts],
            [a[3] for a in alerts], [a[4] for a in alerts])


async def prune(pool: asyncpg.Pool, minute_keep_s: float, seen_keep_s: float) -> None:
    """Minute rows serve only the live dashboard; seen ids only need to outlive redelivery (the
    stream is trimmed long before)."""
    await pool.execute("delete from analytics_counts where grain = 'minute' and bucket < now() - make_interval(secs => $1)",
                       minute_keep_s)
    await pool.execute("delete from analytics_products where grain = 'minute' and bucket < now() - make_interval(secs => $1)",
                       minute_keep_s)
    await pool.execute("delete from analytics_seen where seen_at < now() - make_interval(secs => $1)", seen_keep_s)


# --- reads (the admin API and the live summary)
async def counts(pool: asyncpg.Pool, grain: str, since: float, until: float) -> dict[str, int]:
    """Every metric summed over [since, until) at one grain."""
    rows = await pool.fetch("select metric, sum(value)::int8 as value from analytics_counts "
                            "where grain = $1 and bucket >= to_timestamp($2) and bucket < to_timestamp($3) group by metric",
                            grain, since, until)
    return {r["metric"]: r["value"] for r in rows}


async def series(pool: asyncpg.Pool, grain: str, since: float, until: float, metrics: list[str] | None = None) -> list[dict]:
    rows = await pool.fetch(
        "select extract(epoch from bucket)::int8 as at, metric, value from analytics_counts "
        "where grain = $1 and bucket >= to_timestamp($2) and bucket < to_timestamp($3) "
        "and ($4::text[] is null or metric = any($4::text[])) order by bucket, metric", grain, since, until, metrics)
    out: dict[int, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["at"], {})[r["metric"]] = r["value"]
    return [{"at": at, **values} for at, values in out.items()]


async def top_products(pool: asyncpg.Pool, grain: str, since: float, until: float, limit: int = 10,
                       skus: list[str] | None = None) -> list[dict]:
    rows = await pool.fetch(
        "select sku, sum(units)::int8 as units, sum(revenue_minor)::int8 as revenue_minor, min(currency) as currency "
        "from analytics_products where grain = $1 and bucket >= to_timestamp($2) and bucket < to_timestamp($3) "
        "and ($5::text[] is null or sku = any($5::text[])) "
        "group by sku order by units desc, revenue_minor desc, sku limit $4", grain, since, until, limit, skus)
    return [{"sku": r["sku"], "units": r["units"], "revenue_minor": r["revenue_minor"], "currency": r["currency"].strip()}
            for r in rows]


async def customer_insights(pool: asyncpg.Pool, limit: int = 10) -> dict[str, Any]:
    row = await pool.fetchrow("select count(*)::int8 as customers, count(*) filter (where orders > 1)::int8 as repeat "
                              "from analytics_customers")
    top = await pool.fetch("select customer_key, customer_id::text as customer_id, email, orders, spent_minor, currency, "
                           "extract(epoch from first_order_at)::float8 as first_order_at, "
                           "extract(epoch from last_order_at)::float8 as last_order_at "
                           "from analytics_customers order by spent_minor desc, orders desc limit $1", limit)
    customers, repeat = row["customers"], row["repeat"]
    return {"customers": customers, "repeat_customers": repeat,
            "repeat_rate": round(repeat / customers, 4) if customers else 0.0,
            "top_customers": [{**dict(r), "currency": r["currency"].strip()} for r in top]}


async def recent_alerts(pool: asyncpg.Pool, limit: int = 50) -> list[dict]:
    rows = await pool.fetch("select sku, kind, available, extract(epoch from at)::float8 as at from analytics_alerts "
                            "order by at desc limit $1", limit)
    return [dict(r) for r in rows]


async def latest_summary(redis) -> dict | None:
    """The newest live summary the Analytics actor published (None before its first)."""
    import json

    entries = await redis.xrevrange(ANALYTICS_STREAM, count=1)
    if not entries:
        return None
    fields = entries[0][1]
    raw = fields.get(b"summary") or fields.get("summary")
    return json.loads(raw)
