"""What the realtime hub reads from PostgreSQL: who owns a cart or an order, and their current state
for a subscriber's first frame. One small query each; the hub asks only for topics someone watches."""
from __future__ import annotations

import json
import uuid

import asyncpg

from storage.catalog_prices import sku_info


async def user_auth_state(pool: asyncpg.Pool, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow("select role, status from users where id = $1", user_id)


async def cart_owner(pool: asyncpg.Pool, cart_id: str) -> tuple[bool, str | None]:
    """(exists, customer id or None for a guest cart)."""
    row = await pool.fetchrow("select customer_id::text as customer_id from carts where id = $1", cart_id)
    return (row is not None, row["customer_id"] if row else None)


async def order_owner(pool: asyncpg.Pool, number: str) -> tuple[bool, str | None]:
    row = await pool.fetchrow("select customer_id::text as customer_id from orders where number = $1", number)
    return (row is not None, row["customer_id"] if row else None)


async def order_state(pool: asyncpg.Pool, number: str) -> tuple[int, dict] | None:
    """(version, the order's live view): status and tracking, as the order topic streams them."""
    return (await order_states(pool, [number])).get(number)


async def order_states(pool: asyncpg.Pool, numbers: list[str]) -> dict[str, tuple[int, dict]]:
    """`order_state` for many orders in one round trip (a batch of order events); missing ones left out."""
    rows = await pool.fetch(
        """select number, status, total_minor, currency, carrier, tracking_number, version,
                  extract(epoch from updated_at)::float8 as updated_at
           from orders where number = any($1::text[])""", numbers)
    return {row["number"]: (row["version"], {
        "number": row["number"], "status": row["status"], "total_minor": row["total_minor"],
        "currency": row["currency"].strip(), "carrier": row["carrier"],
        "tracking_number": row["tracking_number"], "updated_at": row["updated_at"]}) for row in rows}


async def cart_state(pool: asyncpg.Pool, cart_id: str) -> tuple[int, dict] | None:
    """(version, the cart as a doc with lines and holds) for a cart topic's first frame."""
    row = await pool.fetchrow("select id, customer_id::text as customer_id, doc, version from carts where id = $1", cart_id)
    if row is None:
        return None
    doc = row["doc"] if isinstance(row["doc"], dict) else json.loads(row["doc"])  # the pool decodes jsonb
    lines = [(l["sku"], int(l["quantity"])) for l in doc.get("lines", [])]
    holds = [(l["sku"], min(float(h["expires_at"]) for h in l["holds"])) for l in doc.get("lines", []) if l.get("holds")]
    return row["version"], {"cart_id": row["id"], "customer_id": row["customer_id"], "version": row["version"],
                            "lines": lines, "holds": holds, "coupon_code": doc.get("coupon_code")}


async def prices(pool: asyncpg.Pool, skus: list[str]) -> dict[str, tuple[str, int, str]]:
    """sku → (name, unit price in minor units, currency): the catalog's current prices."""
    return {s: (i.name, i.price_minor, i.currency) for s, i in (await sku_info(pool, skus)).items()}
