"""Demo data (UI_CONTRACT.md) and a realistic bulk catalog for scale tests.

Stock rows are inserted here only for SKUs no owner has loaded yet; a running InventoryShard
adopts them with `refresh_skus` (the CLI does that after a bulk seed).
"""
from __future__ import annotations

import random
from collections.abc import Callable

import asyncpg

DEMO_MARKER = "demo_seed_v1"
DEMO_EXTRAS_MARKER = "demo_accounts_coupon_v1"

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
    """Create the demo data once; returns False when the catalog was already there.

    The demo accounts and the SAVE10 coupon came after the first demo seed, so they have a marker of
    their own: a data dir seeded before them gets them once, and what an operator deletes later
    (the demo admin with its published password, above all) does not come back at the next start."""
    if not await pool.fetchval("select 1 from surge_meta where key = $1", DEMO_EXTRAS_MARKER):
        await seed_demo_accounts(pool)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("insert into coupons (code, kind, value) values ('SAVE10', 'percent', 10) "
                               "on conflict (code) do nothing")
            await conn.execute("insert into surge_meta (key, value) values ($1, $2) on conflict (key) do nothing",
                               DEMO_EXTRAS_MARKER, {"done": True})
    async with pool.acquire() as conn, conn.transaction():
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
        # derived catalog columns (price range, in stock, published) of what was just inserted
        await conn.execute("select refresh_product_derived(id) from products where tags @> '{demo}'")
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


# Leaves under the demo categories (a three-level tree): slug, name, parent, nouns, tags, materials
LEAVES = [
    ("running-shoes", "Running Shoes", "shoes", ["Running Shoe", "Trail Runner", "Racing Flat"], ["running", "trail", "marathon"], ["mesh", "foam", "rubber"]),
    ("boots", "Boots", "shoes", ["Hiking Boot", "Chelsea Boot", "Winter Boot"], ["hiking", "waterproof", "winter"], ["leather", "suede", "rubber"]),
    ("sandals", "Sandals", "shoes", ["Sandal", "Slide", "Flip Flop"], ["summer", "beach", "casual"], ["cork", "rubber", "leather"]),
    ("t-shirts", "T-Shirts", "tops", ["T-Shirt", "Tank Top", "Polo Shirt"], ["casual", "summer", "basics"], ["cotton", "linen", "polyester"]),
    ("sweaters", "Sweaters & Hoodies", "tops", ["Hoodie", "Sweater", "Cardigan"], ["warm", "winter", "casual"], ["wool", "cotton", "fleece"]),
    ("headphones", "Headphones", "audio", ["Headphones", "Earbuds", "Headset"], ["wireless", "bluetooth", "noise-cancelling"], ["plastic", "aluminium", "leather"]),
    ("speakers", "Speakers", "audio", ["Speaker", "Soundbar", "Subwoofer"], ["wireless", "bluetooth", "party"], ["plastic", "wood", "fabric"]),
    ("keyboards", "Keyboards & Mice", "computing", ["Keyboard", "Mouse", "Trackpad"], ["wireless", "ergonomic", "gaming"], ["plastic", "aluminium"]),
    ("monitors", "Monitors", "computing", ["Monitor", "Laptop Stand", "Webcam"], ["office", "gaming", "4k"], ["plastic", "aluminium", "steel"]),
    ("cookware", "Cookware", "kitchen", ["Frying Pan", "Saucepan", "Dutch Oven"], ["cooking", "nonstick", "induction"], ["cast iron", "steel", "ceramic"]),
    ("appliances", "Small Appliances", "kitchen", ["Kettle", "Blender", "Toaster", "Coffee Grinder"], ["coffee", "breakfast", "electric"], ["steel", "glass", "plastic"]),
    ("lighting", "Lighting", "decor", ["Table Lamp", "Floor Lamp", "Pendant Light"], ["lighting", "living-room", "modern"], ["brass", "glass", "linen"]),
    ("textiles", "Rugs & Textiles", "decor", ["Rug", "Throw Blanket", "Cushion"], ["cozy", "living-room", "handmade"], ["wool", "cotton", "jute"]),
    ("tents", "Tents & Shelters", "camping", ["Tent", "Tarp", "Hammock"], ["camping", "backpacking", "waterproof"], ["nylon", "polyester"]),
    ("camp-kitchen", "Camp Kitchen", "camping", ["Camping Stove", "Lantern", "Water Filter", "Sleeping Bag"], ["camping", "hiking", "outdoor"], ["steel", "titanium", "aluminium"]),
    ("bike-gear", "Bike Gear", "cycling", ["Helmet", "Bike Light", "Bike Pump", "Bike Lock"], ["cycling", "commuting", "safety"], ["plastic", "aluminium", "steel"]),
]
_BRANDS = ["Northwind", "Acme", "Lumen", "Fjord", "Summit", "Harbor", "Pioneer", "Atlas", "Meridian", "Kestrel",
           "Aurora", "Cobalt", "Evergreen", "Granite", "Juniper", "Sable"]
_ADJ = ["Classic", "Ultra", "Eco", "Pro", "Compact", "Deluxe", "Smart", "Rugged", "Light", "Vintage", "Urban", "Nordic",
        "Essential", "Premium", "Travel", "Everyday"]
_COLORS = ["Black", "White", "Red", "Blue", "Green", "Grey", "Navy", "Olive", "Sand"]
_QUALITIES = ["durable", "lightweight", "comfortable", "versatile", "reliable", "breathable", "quiet", "sturdy",
              "elegant", "practical", "powerful", "portable", "soft", "weatherproof", "efficient"]
_USES = ["daily use", "long weekends", "the office", "busy mornings", "rainy days", "family trips", "small spaces",
         "weekend adventures", "training sessions", "quiet evenings", "city commutes", "outdoor cooking"]
_SENTENCES = [
    "A {q1} {noun} made from {material} for {use}.",
    "Designed by {brand} to stay {q2} through years of {use}.",
    "Pairs well with our other {tag} essentials.",
    "The {q1} build keeps it {q2} at home or while travelling.",
    "Easy to clean, easy to store, and built to last.",
    "Customers choose it for {use} because it is {q2} and {q1}.",
]


async def _ensure_leaves(conn: asyncpg.Connection, cats: dict[str, int]) -> dict[str, int]:
    for slug, name, parent, *_ in LEAVES:
        cats[slug] = await conn.fetchval(
            "insert into categories (slug, name, parent_id) values ($1, $2, $3) "
            "on conflict (slug) do update set name = excluded.name returning id", slug, name, cats[parent])
    return cats


def _description(rng: random.Random, brand: str, noun: str, material: str, tag: str) -> str:
    picks = rng.sample(_SENTENCES, 3)
    return " ".join(t.format(q1=rng.choice(_QUALITIES), q2=rng.choice(_QUALITIES), noun=noun.lower(),
                             material=material, use=rng.choice(_USES), brand=brand, tag=tag) for t in picks)


async def seed_catalog(pool: asyncpg.Pool, products: int, *, seed: int = 42, chunk: int = 5000,
                       progress: Callable[[int], None] | None = None) -> int:
    """Add `products` generated products using COPY in chunks: a three-level category tree, 1–3 variants
    (colour, size) each with stock, brand/material attributes, tags, prices (a fifth with a compare-at
    price), descriptions of real words, and approved reviews with their rating aggregates on a third.
    Slugs and SKUs continue after what is there, so running it twice adds more. Returns products added."""
    import uuid
    from decimal import Decimal
    from datetime import datetime, timedelta, timezone

    rng = random.Random(seed)
    async with pool.acquire() as conn:
        cats = await _ensure_leaves(conn, await _ensure_categories(conn))
    now = datetime.now(timezone.utc)
    done = 0
    while done < products:
        n = min(chunk, products - done)
        prows, vrows, srows, rrows = [], [], [], []
        async with pool.acquire() as conn, conn.transaction():
            first_id = await conn.fetchval("select nextval(pg_get_serial_sequence('products','id'))")
            await conn.execute("select setval(pg_get_serial_sequence('products','id'), $1)", first_id + n)
            for i in range(n):
                pid = first_id + i
                leaf_slug, _, _, nouns, tags, materials = rng.choice(LEAVES)
                brand, noun, material = rng.choice(_BRANDS), rng.choice(nouns), rng.choice(materials)
                name = f"{brand} {rng.choice(_ADJ)} {noun}"
                slug = f"{name.lower().replace(' ', '-')}-{pid}"
                ptags = rng.sample(tags, rng.randint(1, len(tags)))
                desc = _description(rng, brand, noun, material, ptags[0])
                base = rng.choice([rng.randint(5, 60), rng.randint(60, 300), rng.randint(300, 900)]) * 100 - 1
                compare = base + rng.randint(10, 40) * 100 if rng.random() < 0.2 else None
                prices, any_stock = [], False
                for v in range(rng.randint(1, 3)):
                    sku = f"P{pid}-{v}"
                    color = _COLORS[(pid + v) % len(_COLORS)]
                    price = base + v * 500
                    prices.append(price)
                    vrows.append((sku, pid, color, price, compare + v * 500 if compare else None, "USD",
                                  {"color": color}, v))
                    on_hand = rng.choice([0, 3, 10, 25, 50, 100, 250])
                    any_stock |= on_hand > 0
                    srows.append((sku, on_hand, on_hand, 5))
                count = total = 0
                if rng.random() < 0.33:
                    for _ in range(rng.randint(1, 4)):
                        rating = rng.choice([2, 3, 4, 4, 5, 5, 5])
                        count, total = count + 1, total + rating
                        rrows.append((pid, uuid.UUID(int=rng.getrandbits(128)), rating,
                                      f"{rng.choice(_QUALITIES).capitalize()} {noun.lower()}", desc.split(".")[0] + ".",
                                      "approved"))
                created = now - timedelta(seconds=rng.randint(0, 365 * 86400))
                prows.append((pid, slug, name, desc, "active", cats[leaf_slug], False, ptags,
                               {"brand": brand, "material": material}, min(prices), max(prices), "USD", any_stock,
                               count, total, Decimal(round(total / count, 2)).quantize(Decimal('0.01')) if count else Decimal(0), created, created, created))
            # stock first: its in-stock trigger finds no variant yet and does nothing (the product row
            # carries in_stock already), which keeps the bulk load a bulk load
            await conn.copy_records_to_table("stock_levels", records=srows, columns=[
                "sku", "on_hand", "received", "low_stock_threshold"])
            await conn.copy_records_to_table("products", records=prows, columns=[
                "id", "slug", "name", "description", "status", "category_id", "flash_sale", "tags", "attributes",
                "price_min_minor", "price_max_minor", "currency", "in_stock", "rating_count", "rating_sum",
                "rating_avg", "created_at", "updated_at", "published_at"])
            await conn.copy_records_to_table("variants", records=vrows, columns=[
                "sku", "product_id", "name", "price_minor", "compare_at_minor", "currency", "attributes", "position"])
            await conn.copy_records_to_table("reviews", records=rrows, columns=[
                "product_id", "customer_id", "rating", "title", "body", "status"])
        done += n
        if progress:
            progress(n)
    async with pool.acquire() as conn:
        # the load's facet deltas (one per product) into the listing facet cells (migration 0007)
        await conn.execute("select search_facets_compact()")
        # statistics for the planner, and the visibility map that lets listings use index-only scans
        await conn.execute("vacuum (analyze) products, search_facet_cells, search_facet_deltas")
    return done
