"""Persistence of carts (owned by CartShard actors): load one, and commit a batch in one statement.

A cart is written whole (its `doc`), fenced by `version`: an update applies only over an older
version, so a stale owner instance can never overwrite a newer cart.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from storage.outbox import OUTBOX_CHANNEL, OutboxRow, outbox_columns, outbox_cte


@dataclass(slots=True)
class CartBatch:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest row per cart id
    outbox: list[OutboxRow] = field(default_factory=list)


_COMMIT_SQL = """
with carts_up as (
    insert into carts as c (id, customer_id, status, currency, doc, version, updated_at)
    select id, cu, st, cur, d::jsonb, v, to_timestamp(at)
    from unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::float8[])
         as x(id, cu, st, cur, d, v, at)
    on conflict (id) do update set
        customer_id = excluded.customer_id, status = excluded.status, doc = excluded.doc,
        version = excluded.version, updated_at = excluded.updated_at
    where c.version < excluded.version
    returning 1
),
""" + outbox_cte(8) + """
select (select count(*) from carts_up) as written, pg_notify('""" + OUTBOX_CHANNEL + """', '') as notified
"""


async def commit_batch(pool: asyncpg.Pool, batch: CartBatch) -> int:
    rows = list(batch.rows.values())
    args = [[r["id"] for r in rows], [r["customer_id"] for r in rows], [r["status"] for r in rows],
            [r["currency"] for r in rows], [json.dumps(r["doc"], separators=(",", ":")) for r in rows],
            [r["version"] for r in rows], [r["updated_at"] for r in rows], *outbox_columns(batch.outbox)]
    async with pool.acquire() as conn:
        return (await conn.fetchrow(_COMMIT_SQL, *args))["written"]


async def load(pool: asyncpg.Pool, cart_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "select id, customer_id::text as customer_id, status, currency, doc, version from carts where id = $1", cart_id)


async def active_cart_of(pool: asyncpg.Pool, customer_id: str) -> str | None:
    return await pool.fetchval("select id from carts where customer_id = $1::uuid and status = 'active'", customer_id)


async def carts_of(pool: asyncpg.Pool, customer_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "select id, status, doc, version, updated_at from carts where customer_id = $1::uuid order by updated_at desc",
        customer_id)
