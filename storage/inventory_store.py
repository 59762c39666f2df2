"""Persistence of an InventoryShard's slice: load it, and commit a batch in one round trip.

A batch is one statement of data-modifying CTEs (stock rows, reservation lines, movements, outbox),
so it is atomic without BEGIN/COMMIT round trips. Stock rows carry a version; an update only
applies over an older version, and a short count means another owner instance wrote the row, which
fences off a stale owner (`StaleOwner`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from storage.outbox import OUTBOX_CHANNEL, OutboxRow, outbox_columns, outbox_cte


class StaleOwner(RuntimeError):
    """The database holds a newer version of a row than this owner: reload before going on."""


@dataclass(slots=True)
class Movement:
    sku: str
    kind: str  # reserve | release | expire | commit | adjust | create
    delta_on_hand: int = 0
    delta_reserved: int = 0
    reason: str | None = None
    reservation_id: str | None = None
    at: float = 0.0
    adjustment_id: str | None = None  # the caller's idempotency key of an adjustment


@dataclass(slots=True)
class InventoryBatch:
    stock_rows: list[dict[str, Any]] = field(default_factory=list)
    reservation_rows: list[dict[str, Any]] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)


_COMMIT_SQL = """
with stock as (
    insert into stock_levels as s (sku, on_hand, reserved, sold, received, low_stock_threshold,
                                   per_customer_cap, version, updated_at)
    select sku, oh, rs, sd, rc, th, cap, v, to_timestamp(at)
    from unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                $8::int8[], $9::float8[]) as x(sku, oh, rs, sd, rc, th, cap, v, at)
    on conflict (sku) do update set
        on_hand = excluded.on_hand, reserved = excluded.reserved, sold = excluded.sold,
        received = excluded.received, low_stock_threshold = excluded.low_stock_threshold,
        per_customer_cap = excluded.per_customer_cap, version = excluded.version,
        updated_at = excluded.updated_at
    where s.version < excluded.version
    returning 1
),
lines as (
    insert into reservation_lines as r (reservation_id, sku, owner, customer_id, quantity, state,
                                        expires_at, created_at, updated_at)
    select rid, sku, ow, cu, q, st, to_timestamp(ex), to_timestamp(cr), to_timestamp(up)
    from unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::int8[], $15::text[],
                $16::float8[], $17::float8[], $18::float8[]) as x(rid, sku, ow, cu, q, st, ex, cr, up)
    on conflict (reservation_id, sku) do update set
        state = excluded.state, expires_at = excluded.expires_at, updated_at = excluded.updated_at
    returning 1
),
moves as (
    insert into stock_movements (sku, kind, delta_on_hand, delta_reserved, reason, reservation_id, at, adjustment_id)
    select sku, k, doh, drs, rs, rid, to_timestamp(at), aid
    from unnest($19::text[], $20::text[], $21::int8[], $22::int8[], $23::text[], $24::text[], $25::float8[],
                $26::text[]) as x(sku, k, doh, drs, rs, rid, at, aid)
    returning 1
),
""" + outbox_cte(27) + """
select (select count(*) from stock) as stock_written,
       -- wakes the EventRelay when this statement commits (delivered on commit, never before)
       pg_notify('""" + OUTBOX_CHANNEL + """', '') as notified
"""


def _stock_columns(rows: Sequence[dict[str, Any]]) -> list[list]:
    keys = ("sku", "on_hand", "reserved", "sold", "received", "low_stock_threshold", "per_customer_cap", "version", "updated_at")
    return [[r[k] for r in rows] for k in keys]


def _reservation_columns(rows: Sequence[dict[str, Any]]) -> list[list]:
    keys = ("reservation_id", "sku", "owner", "customer_id", "quantity", "state", "expires_at", "created_at", "updated_at")
    return [[r[k] for r in rows] for k in keys]


def _movement_columns(moves: Sequence[Movement]) -> list[list]:
    return [
        [m.sku for m in moves], [m.kind for m in moves], [m.delta_on_hand for m in moves],
        [m.delta_reserved for m in moves], [m.reason for m in moves], [m.reservation_id for m in moves],
        [m.at for m in moves], [m.adjustment_id for m in moves],
    ]


async def commit_batch(pool: asyncpg.Pool, batch: InventoryBatch) -> None:
    """Write one batch atomically; raises StaleOwner if a stock row was written by someone newer."""
    args = [*_stock_columns(batch.stock_rows), *_reservation_columns(batch.reservation_rows),
            *_movement_columns(batch.movements), *outbox_columns(batch.outbox)]
    async with pool.acquire() as conn:
        written = (await conn.fetchrow(_COMMIT_SQL, *args))["stock_written"]
    if written != len(batch.stock_rows):
        raise StaleOwner(f"{len(batch.stock_rows) - written} stock rows have a newer version in the database")


async def load_slice(pool: asyncpg.Pool, owns: Callable[[str], bool], skus: Sequence[str] | None = None):
    """Rows of the SKUs this owner owns (optionally only `skus`), and their live reservation lines:
    every held line, and committed lines with a customer (per-customer caps are counted from them)."""
    async with pool.acquire() as conn:
        if skus is None:
            stock = await conn.fetch("select * from stock_levels")
            lines = await conn.fetch(
                "select * from reservation_lines where state = 'held' or (state = 'committed' and customer_id is not null)"
            )
        else:
            stock = await conn.fetch("select * from stock_levels where sku = any($1::text[])", list(skus))
            lines = await conn.fetch(
                "select * from reservation_lines where sku = any($1::text[]) and "
                "(state = 'held' or (state = 'committed' and customer_id is not null))", list(skus),
            )
    return [r for r in stock if owns(r["sku"])], [r for r in lines if owns(r["sku"])]


async def find_adjustment(pool: asyncpg.Pool, adjustment_id: str) -> asyncpg.Record | None:
    """The committed adjustment made under this idempotency key, if any."""
    return await pool.fetchrow("select sku, delta_on_hand as delta, reason from stock_movements where adjustment_id = $1",
                               adjustment_id)


async def movements(pool: asyncpg.Pool, sku: str, limit: int = 100, before_id: int | None = None) -> list[asyncpg.Record]:
    return await pool.fetch(
        "select id, sku, kind, delta_on_hand, delta_reserved, reason, reservation_id, adjustment_id, at from stock_movements "
        "where sku = $1 and ($2::int8 is null or id < $2) order by id desc limit $3",
        sku, before_id, limit,
    )
