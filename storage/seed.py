"""Demo data (UI_CONTRACT.md) and a realistic bulk catalog for scale tests.

Stock rows are inserted here only for SKUs no owner has loaded yet; a running InventoryShard
adopts them with `refresh_skus` (the CLI does that after a bulk seed).
"""
from __future__ import annotations

import random
from collections.abc import Callable

import asyncpg

DEMO_MARKER = "demo_seed_v1"

CATEGORIES = [
    ("apparel", "Apparel", None), ("shoes", "Shoes", "apparel"), ("tops", "Tops", "apparel"),
    ("electronics", "Electronics", None), ("audio", "Audio", "electronics"), ("computing", "Computing", "electronics"),
    ("home", "Home & Kitchen", None), ("kitchen", "Kitchen", "home"), ("decor", "Decor", "home"),
    ("outdoors", "Outdoors", None), ("camping", "Camping", "outdoors"), ("cycling", "Cycling", "outdoors"),
]

DEMO_PRODUCTS = [
    # slug, name, description, category, flash_sale, [(sku, variant, price_minor, on_hand, threshold, cap)]
    ("sample-product", "Sample Product", "A dependable everyday product, always in stock for demos.", "tops", False,
     [("SAMPLE-1", "Default", 1999, 100, 10, None)]),
    ("flash-sale-sneaker", "Flash Sale Sneaker", "Limited run sneaker: small stock, live countdown.", "shoes", True,
     [("FLASH-1", "Size 42", 4999, 20, 5, 2)]),
    ("wireless-headphones", "Wireless Headphones", "Over-ear, noise cancelling, 30 h battery.", "audio", False,
     [("HEAD-BLK", "Black", 12900, 40, 5, None), ("HEAD-WHT", "White", 12900, 25, 5, None)]),
    ("camping-lantern", "Camping Lantern", "Rechargeable LED lantern with three modes.", "camping", False,
     [("LANTERN-1", "Default", 2499, 60, 10, None)]),
]


async def _ensure_categories(conn: asyncpg.Connection) -> dict[str, int]:
    ids: dict[str, int] = {}
    for slug, name, parent in CATEGORIES:
        ids[slug] = await conn.fetchval(
            "insert into categories (slug, name, parent_id) values ($1, $2, $3) "
            "on conflict (slug) do update set name = excluded.name returning id",
            slug, name, ids.get(parent) if parent else None,
        )
    return ids


async def seed_demo(pool: asyncpg.Pool) -> bool:
    """Create the demo catalog once; returns False when it was already there."""
    await seed_demo_accounts(pool)
    async with pool.acquire() as conn, conn.transaction():
        # the demo coupon (UI_CONTRACT): 10% off the subtotal; added to older data dirs too
        await conn.execute("insert into coupons (code, kind, value) values ('SAVE10', 'percent', 10) "
                           "on conflict (code) do nothing")
        if await conn.fetchval("select 1 from surge_meta where key = $1", DEMO_MARKER):
            return False
        cats = await _ensure_categories(conn)
        for slug, name, desc, cat, flash, variants in DEMO_PRODUCTS:
            pid = await conn.fetchval(
                "insert into products (slug, name, description, category_id, flash_sale, tags) values ($1,$2,$3,$4,$5,$6) "
                "on conflict (slug) do update set name = excluded.name returning id",
                slug, name, desc, cats[cat], flash, ["demo"] + (["flash-sale"] if flash else []),
            )
            for sku, vname, price, on_hand, threshold, cap in variants:
                await conn.execute(
                    "insert into variants (sku, product_id, name, price_minor, currency) values ($1,$2,$3,$4,'USD') "
                    "on conflict (sku) do nothing", sku, pid, vname, price)
                await conn.execute(
                    "insert into stock_levels (sku, on_hand, received, low_stock_threshold, per_customer_cap) "
                    "values ($1,$2,$2,$3,$4) on conflict (sku) do nothing", sku, on_hand, threshold, cap)
        await conn.execute("insert into surge_meta (key, value) values ($1, $2)", DEMO_MARKER, {"done": True})
    return True


# (email, password, role, name): UI_CONTRACT.md's demo accounts
DEMO_ACCOUNTS = [
    ("customer@example.com", "password123", "customer", "Demo Customer"),
    ("admin@example.com", "admin12345", "admin", "Demo Admin"),
]


async def seed_demo_accounts(pool: asyncpg.Pool) -> int:
    """The demo accounts, once (an existing account is left as it is); returns how many were created."""
    from storage.passwords import PasswordHasher

    hasher = None
    created = 0
    for email, password, role, name in DEMO_ACCOUNTS:
        if await pool.fetchval("select 1 from users where lower(email) = lower($1)", email):
            continue
        hasher = hasher or PasswordHasher()
        created += await pool.fetchval(
            "with ins as (insert into users (email, password_hash, role, name) values ($1, $2, $3, $4) "
            "on conflict ((lower(email))) do nothing returning 1) select count(*) from ins",
            email, await hasher.hash(password), role, name)
    return created


_ADJ = ["Classic", "Ultra", "Eco", "Pro", "Compact", "Deluxe", "Smart", "Rugged", "Light", "Vintage", "Urban", "Nordic"]
_NOUN = {
    "shoes": ["Sneaker", "Boot", "Sandal", "Runner"], "tops": ["T-Shirt", "Hoodie", "Shirt", "Sweater"],
    "audio": ["Headphones", "Speaker", "Earbuds", "Soundbar"], "computing": ["Laptop Stand", "Keyboard", "Mouse", "Monitor"],
    "kitchen": ["Kettle", "Knife Set", "Pan", "Blender"], "decor": ["Lamp", "Vase", "Rug", "Mirror"],
    "camping": ["Tent", "Lantern", "Sleeping Bag", "Stove"], "cycling": ["Helmet", "Bike Light", "Pump", "Lock"],
}
_COLORS = ["Black", "White", "Red", "Blue", "Green", "Grey"]


async def seed_catalog(pool: asyncpg.Pool, products: int, *, seed: int = 42, chunk: int = 5000,
                       progress: Callable[[int], None] | None = None) -> int:
    """Add `products` generated products (1–3 variants each, with stock) using COPY in chunks.
    Slugs and SKUs continue after what is there, so running it twice adds more. Returns products added."""
    rng = random.Random(seed)
    async with pool.acquire() as conn:
        cats = await _ensure_categories(conn)
    leaf = [c for c in _NOUN]
    done = 0
    while done < products:
        n = min(chunk, products - done)
        prows, vrows, srows = [], [], []
        async with pool.acquire() as conn, conn.transaction():
            first_id = await conn.fetchval("select nextval(pg_get_serial_sequence('products','id'))")
            await conn.execute("select setval(pg_get_serial_sequence('products','id'), $1)", first_id + n)
            for i in range(n):
                pid = first_id + i
                cat = rng.choice(leaf)
                name = f"{rng.choice(_ADJ)} {rng.choice(_NOUN[cat])} {pid}"
                slug = name.lower().replace(" ", "-")
                desc = f"{name}: {rng.choice(['durable', 'lightweight', 'premium', 'affordable'])} {cat} gear."
                prows.append((pid, slug, name, desc, "active", cats[cat], False, [cat], {"brand": rng.choice(_ADJ)}))
                base = rng.randint(5, 500) * 100 - 1
                for v in range(rng.randint(1, 3)):
                    sku = f"P{pid}-{v}"
                    color = _COLORS[v % len(_COLORS)]
                    vrows.append((sku, pid, color, base + v * 500, "USD", {"color": color}))
                    on_hand = rng.choice([0, 3, 10, 25, 50, 100, 250])
                    srows.append((sku, on_hand, on_hand, 5))
            await conn.copy_records_to_table("products", records=prows, columns=[
                "id", "slug", "name", "description", "status", "category_id", "flash_sale", "tags", "attributes"])
            await conn.copy_records_to_table("variants", records=vrows, columns=[
                "sku", "product_id", "name", "price_minor", "currency", "attributes"])
            await conn.copy_records_to_table("stock_levels", records=srows, columns=[
                "sku", "on_hand", "received", "low_stock_threshold"])
        done += n
        if progress:
            progress(n)
    return done
