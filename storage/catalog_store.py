"""Products, variants and categories: the catalog's repository.

Every product change writes its outbox row (topic `catalog`) in the same transaction, so the cache
invalidation and the search indexer hear of exactly what committed. Derived columns that listings
sort and filter on (price range, currency, in stock) are recomputed in that transaction too.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from storage import outbox

CATALOG_TOPIC = "catalog"
PRODUCT_FIELDS = ("slug", "name", "description", "status", "flash_sale", "tags", "attributes", "image_urls",
                  "seo_title", "seo_description")
VARIANT_FIELDS = ("sku", "name", "price_minor", "compare_at_minor", "currency", "attributes", "position", "image_url")


class CatalogConflict(Exception):
    """A unique field is taken (`field`: slug or sku) or a reference is unknown (`field`: category)."""

    def __init__(self, field: str, value: Any):
        super().__init__(f"{field} {value!r}")
        self.field, self.value = field, value


class ProductMissing(Exception):
    pass


@dataclass(frozen=True)
class CategoryTree:
    """Every category, small enough to hold whole: id -> parent, id -> (slug, name)."""

    parents: dict[int, int | None]
    names: dict[int, tuple[str, str]]
    by_slug: dict[str, int]
    positions: dict[int, int]

    def as_nested(self) -> list[dict[str, Any]]:
        nodes = {cid: {"id": cid, "slug": s, "name": n, "children": []} for cid, (s, n) in self.names.items()}
        roots = []
        for cid in sorted(nodes, key=lambda c: (self.positions.get(c, 0), self.names[c][1])):
            parent = self.parents.get(cid)
            (nodes[parent]["children"] if parent in nodes else roots).append(nodes[cid])
        return roots

    def breadcrumb(self, cid: int | None) -> list[dict[str, Any]]:
        out, seen = [], set()
        while cid is not None and cid in self.names and cid not in seen:
            seen.add(cid)
            out.append({"id": cid, "slug": self.names[cid][0], "name": self.names[cid][1]})
            cid = self.parents.get(cid)
        return out[::-1]


async def load_categories(conn) -> CategoryTree:
    rows = await conn.fetch("select id, slug, name, parent_id, position from categories")
    return CategoryTree(parents={r["id"]: r["parent_id"] for r in rows},
                        names={r["id"]: (r["slug"], r["name"]) for r in rows},
                        by_slug={r["slug"]: r["id"] for r in rows},
                        positions={r["id"]: r["position"] for r in rows})


class CategorySource:
    """The category tree, reloaded after `ttl_s` or on demand (a slug or id not seen yet)."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 30.0):
        self.pool, self.ttl_s = pool, ttl_s
        self._tree: CategoryTree | None = None
        self._at = 0.0

    async def get(self, refresh: bool = False) -> CategoryTree:
        if refresh or self._tree is None or time.monotonic() - self._at > self.ttl_s:
            async with self.pool.acquire() as conn:
                self._tree = await load_categories(conn)
            self._at = time.monotonic()
        return self._tree

    async def resolve(self, slug: str) -> int | None:
        tree = await self.get()
        if slug not in tree.by_slug:
            tree = await self.get(refresh=True)
        return tree.by_slug.get(slug)


async def write_catalog_event(conn, key: str, type_: str, payload: dict[str, Any]) -> None:
    now = time.time()
    await outbox.write(conn, [outbox.OutboxRow(uuid.uuid4(), CATALOG_TOPIC, key, type_, {**payload, "occurred_at": now}, now)])


# --- categories ------------------------------------------------------------------------------------

async def upsert_category(pool: asyncpg.Pool, slug: str, name: str, parent_slug: str | None,
                          description: str = "", position: int = 0, category_id: int | None = None) -> int:
    async with pool.acquire() as conn, conn.transaction():
        parent_id = None
        if parent_slug:
            parent_id = await conn.fetchval("select id from categories where slug = $1", parent_slug)
            if parent_id is None:
                raise CatalogConflict("parent", parent_slug)
        try:
            if category_id is None:
                cid = await conn.fetchval(
                    "insert into categories (slug, name, parent_id, description, position) values ($1,$2,$3,$4,$5) returning id",
                    slug, name, parent_id, description, position)
            else:
                # refuse a move under its own subtree: the tree must stay a tree
                if parent_id is not None and await conn.fetchval(
                        "with recursive sub as (select id from categories where id = $1 union all "
                        "select c.id from categories c join sub on c.parent_id = sub.id) select 1 from sub where id = $2",
                        category_id, parent_id):
                    raise CatalogConflict("parent", parent_slug)
                cid = await conn.fetchval(
                    "update categories set slug=$2, name=$3, parent_id=$4, description=$5, position=$6, updated_at=now() "
                    "where id=$1 returning id", category_id, slug, name, parent_id, description, position)
                if cid is None:
                    raise ProductMissing(category_id)
        except asyncpg.UniqueViolationError:
            raise CatalogConflict("slug", slug) from None
        await write_catalog_event(conn, f"category:{cid}", "CategoryChanged", {"category_id": cid, "slug": slug})
        return cid


# --- products --------------------------------------------------------------------------------------

async def _category_id(conn, slug: str | None) -> int | None:
    if slug is None:
        return None
    cid = await conn.fetchval("select id from categories where slug = $1", slug)
    if cid is None:
        raise CatalogConflict("category", slug)
    return cid


async def _write_variants(conn, product_id: int, variants: Sequence[dict[str, Any]], replace: bool) -> None:
    skus = [v["sku"] for v in variants]
    taken = await conn.fetchval("select sku from variants where sku = any($1::text[]) and product_id <> $2 limit 1",
                                skus, product_id)
    if taken:
        raise CatalogConflict("sku", taken)
    if replace:
        await conn.execute("delete from variants where product_id = $1 and not (sku = any($2::text[]))", product_id, skus)
    await conn.execute(
        """insert into variants (sku, product_id, name, price_minor, compare_at_minor, currency, attributes, position, image_url)
           select s, $1, n, p, c, cur, a::jsonb, pos, img
           from unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[], $8::int4[], $9::text[])
                as x(s, n, p, c, cur, a, pos, img)
           on conflict (sku) do update set name = excluded.name, price_minor = excluded.price_minor,
               compare_at_minor = excluded.compare_at_minor, currency = excluded.currency,
               attributes = excluded.attributes, position = excluded.position, image_url = excluded.image_url""",
        product_id, skus, [v.get("name", "") for v in variants], [v["price_minor"] for v in variants],
        [v.get("compare_at_minor") for v in variants], [v.get("currency", "USD") for v in variants],
        [json.dumps(v.get("attributes") or {}) for v in variants],
        [v.get("position", i) for i, v in enumerate(variants)], [v.get("image_url") for v in variants])


async def _refresh_derived(conn, product_id: int) -> None:
    await conn.execute("select refresh_product_derived($1)", product_id)  # defined in 0004_catalog.sql


async def create_product(pool: asyncpg.Pool, data: dict[str, Any], variants: Sequence[dict[str, Any]]) -> int:
    """Insert a product and its variants; returns its id. Raises CatalogConflict."""
    async with pool.acquire() as conn, conn.transaction():
        cid = await _category_id(conn, data.get("category"))
        try:
            pid = await conn.fetchval(
                """insert into products (slug, name, description, status, flash_sale, tags, attributes, image_urls,
                                         seo_title, seo_description, category_id)
                   values ($1,$2,$3,$4,$5,$6,$7::text::jsonb,$8,$9,$10,$11) returning id""",
                data["slug"], data["name"], data.get("description", ""), data.get("status", "draft"),
                data.get("flash_sale", False), list(data.get("tags") or []), json.dumps(data.get("attributes") or {}),
                list(data.get("image_urls") or []), data.get("seo_title", ""), data.get("seo_description", ""), cid)
        except asyncpg.UniqueViolationError:
            raise CatalogConflict("slug", data["slug"]) from None
        await _write_variants(conn, pid, variants, replace=False)
        await _refresh_derived(conn, pid)
        await write_catalog_event(conn, f"product:{pid}", "ProductCreated",
                             {"product_id": pid, "slug": data["slug"], "old_slug": None,
                              "status": data.get("status", "draft"), "skus": [v["sku"] for v in variants]})
        return pid


async def update_product(pool: asyncpg.Pool, product_id: int, changes: dict[str, Any],
                         variants: Sequence[dict[str, Any]] | None = None) -> None:
    """Change the given fields; `variants`, when given, replaces the product's variant list."""
    async with pool.acquire() as conn, conn.transaction():
        old = await conn.fetchrow("select slug, status from products where id = $1 for update", product_id)
        if old is None:
            raise ProductMissing(product_id)
        sets, args = [], [product_id]
        for name in PRODUCT_FIELDS:
            if name in changes:
                value = changes[name]
                if name == "attributes":
                    args.append(json.dumps(value or {}))
                    sets.append(f"attributes = ${len(args)}::text::jsonb")
                    continue
                args.append(list(value) if name in ("tags", "image_urls") else value)
                sets.append(f"{name} = ${len(args)}")
        if "category" in changes:
            args.append(await _category_id(conn, changes["category"]))
            sets.append(f"category_id = ${len(args)}")
        if sets:
            try:
                await conn.execute(f"update products set {', '.join(sets)}, updated_at = now() where id = $1", *args)
            except asyncpg.UniqueViolationError:
                raise CatalogConflict("slug", changes.get("slug")) from None
        if variants is not None:
            await _write_variants(conn, product_id, variants, replace=True)
        await _refresh_derived(conn, product_id)
        new = await conn.fetchrow("select slug, status from products where id = $1", product_id)
        skus = [r["sku"] for r in await conn.fetch("select sku from variants where product_id = $1", product_id)]
        type_ = "ProductArchived" if new["status"] == "archived" and old["status"] != "archived" else "ProductUpdated"
        await write_catalog_event(conn, f"product:{product_id}", type_,
                             {"product_id": product_id, "slug": new["slug"], "old_slug": old["slug"],
                              "status": new["status"], "skus": skus})


_PRODUCT_COLUMNS = """p.id, p.slug, p.name, p.description, p.status, p.flash_sale, p.tags, p.attributes, p.image_urls,
    p.seo_title, p.seo_description, p.category_id, p.price_min_minor, p.price_max_minor, p.currency, p.in_stock,
    p.rating_avg, p.rating_count, p.created_at, p.updated_at, p.published_at"""


def _product_dict(row, variants) -> dict[str, Any]:
    d = dict(row)
    d["rating_avg"] = float(d["rating_avg"])
    for k in ("created_at", "updated_at", "published_at"):
        d[k] = d[k].isoformat() if d[k] is not None else None
    d["variants"] = [{**dict(v), "in_stock": bool(v["in_stock"])} for v in variants]
    return d


async def _variants_of(conn, product_id: int):
    return await conn.fetch(
        """select v.sku, v.name, v.price_minor, v.compare_at_minor, v.currency, v.attributes, v.position, v.image_url,
                  coalesce(s.on_hand - s.reserved, 0) > 0 as in_stock
           from variants v left join stock_levels s on s.sku = v.sku
           where v.product_id = $1 order by v.position, v.sku""", product_id)


async def get_product(conn, product_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"select {_PRODUCT_COLUMNS} from products p where p.id = $1", product_id)
    return None if row is None else _product_dict(row, await _variants_of(conn, product_id))


async def get_public_product(conn, slug: str) -> dict[str, Any] | None:
    """An active product by slug, with variants and their in-stock flags; None for draft, archived or unknown."""
    row = await conn.fetchrow(f"select {_PRODUCT_COLUMNS} from products p where p.slug = $1 and p.status = 'active'", slug)
    return None if row is None else _product_dict(row, await _variants_of(conn, row["id"]))


async def products_for_skus(conn, skus: Iterable[str]) -> list[tuple[int, str]]:
    rows = await conn.fetch("select distinct p.id, p.slug from variants v join products p on p.id = v.product_id "
                            "where v.sku = any($1::text[])", list(skus))
    return [(r["id"], r["slug"]) for r in rows]


async def product_cards(conn, product_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Small active-product summaries in the order of `product_ids` (others left out)."""
    rows = await conn.fetch(
        """select p.id, p.slug, p.name, p.price_min_minor, p.currency, p.image_urls[1] as image_url, p.in_stock,
                  p.rating_avg, p.rating_count
           from unnest($1::int8[]) with ordinality as x(id, ord) join products p on p.id = x.id
           where p.status = 'active' order by x.ord""", list(product_ids))
    return [{**dict(r), "rating_avg": float(r["rating_avg"])} for r in rows]


async def search_documents(conn, product_ids: Sequence[int]) -> list[dict[str, Any]]:
    """What a search index holds per product (for the Elasticsearch backend's bulk indexing)."""
    rows = await conn.fetch(
        """select p.id, p.slug, p.name, p.description, p.status, p.tags, p.attributes, p.category_id,
                  p.price_min_minor, p.price_max_minor, p.currency, p.in_stock, p.rating_avg::float8 as rating_avg,
                  p.rating_count, p.image_urls[1] as image_url, extract(epoch from p.created_at)::float8 as created_at,
                  (select max(compare_at_minor) from variants v where v.product_id = p.id) as compare_at_minor
           from products p where p.id = any($1::int8[])""", list(product_ids))
    return [dict(r) for r in rows]


async def active_product_id(conn, slug: str) -> int | None:
    return await conn.fetchval("select id from products where slug = $1 and status = 'active'", slug)
