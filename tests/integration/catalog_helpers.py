"""Helpers for catalog tests on the shared stack: unique slugs, SKUs and categories per test."""
from __future__ import annotations

import uuid
from typing import Any


def uid() -> str:
    return uuid.uuid4().hex[:10]


async def make_category(api, admin_headers, parent: str | None = None, name: str | None = None) -> str:
    slug = f"cat-{uid()}"
    r = await api.post("/admin/categories", json={"slug": slug, "name": name or slug, "parent": parent},
                       headers=admin_headers)
    assert r.status_code == 201, r.text
    return slug


async def make_product(api, admin_headers, *, name: str | None = None, category: str | None = None,
                       status: str = "active", prices: tuple[int, ...] = (1999,), **fields: Any) -> dict:
    u = uid()
    body = {"slug": f"p-{u}", "name": name or f"Product {u}", "status": status, "category": category,
            "variants": [{"sku": f"T-{u}-{i}", "name": f"v{i}", "price_minor": p} for i, p in enumerate(prices)],
            **fields}
    r = await api.post("/admin/products", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    return r.json()


async def set_stock(api, admin_headers, sku: str, on_hand: int) -> None:
    r = await api.put(f"/admin/inventory/{sku}", json={"on_hand": on_hand}, headers=admin_headers)
    assert r.status_code == 200, r.text


async def insert_order(db, customer_id: uuid.UUID | None, lines: list[tuple[str, int, int]], status: str = "paid") -> int:
    """A finished order straight into the tables (the order pipeline is another issue's): lines are
    (sku, product_id, quantity)."""
    u = uid()
    async with db.acquire() as conn, conn.transaction():
        oid = await conn.fetchval(
            """insert into orders (number, cart_id, idempotency_key, customer_id, email, status, currency,
                                   subtotal_minor, total_minor, shipping_method, shipping_address, reservation_ids,
                                   payment_key, expires_at, paid_at, request_fingerprint)
               values ('ORD-' || nextval('order_number_seq'), $1, $1, $2, 'buyer@example.com', $3, 'USD', 100, 100,
                       'standard', '{}'::jsonb, array[$1], $1, now() + interval '1 hour',
                       case when $3 = 'pending_payment' then null else now() end, $1) returning id""",
            f"cart-{u}", customer_id, status)
        for sku, pid, qty in lines:
            await conn.execute("insert into order_lines (order_id, sku, product_id, name, quantity, unit_price_minor, "
                               "line_total_minor) values ($1, $2, $3, $2, $4::int8, 100, 100 * $4::int8)", oid, sku, pid, qty)
    return oid
