"""Shared helpers for the cart, checkout and order tests: make a sellable product, sign requests."""
from __future__ import annotations

import uuid

GOOD_CARD = {"number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123"}
DECLINED_CARD = {"number": "4000 0000 0000 0341", "expiry": "12/34", "cvc": "123"}
THREE_DS_CARD = {"number": "4000 0025 0000 3155", "expiry": "12/34", "cvc": "123"}
ADDRESS = {"name": "Ada Shopper", "line1": "1 Market St", "city": "San Francisco", "state": "CA", "zip": "94105"}


async def make_product(db, api, admin_headers, *, price_minor: int = 1500, on_hand: int = 50, flash: bool = False,
                       cap: int | None = None, status: str = "active") -> str:
    """A product with one variant and its stock (stock through the admin API, so its shard owns it)."""
    tag = uuid.uuid4().hex[:10]
    sku = f"T-{tag}".upper()
    pid = await db.fetchval("insert into products (slug, name, status, flash_sale) values ($1, $2, $3, $4) returning id",
                            f"test-{tag}", f"Test product {tag}", status, flash)
    await db.execute("insert into variants (sku, product_id, name, price_minor) values ($1, $2, 'Default', $3)",
                     sku, pid, price_minor)
    body = {"on_hand": on_hand, **({"per_customer_cap": cap} if cap else {})}
    r = await api.put(f"/admin/inventory/{sku}", json=body, headers=admin_headers)
    assert r.status_code == 200, r.text
    return sku


def checkout_body(card=GOOD_CARD, email: str | None = "guest@example.com", **extra) -> dict:
    body = {"shipping_address": ADDRESS, "shipping_method": "standard", "payment": {"card": card}, **extra}
    if email:
        body["email"] = email
    return body


def key() -> str:
    return "k-" + uuid.uuid4().hex
