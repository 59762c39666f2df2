"""PostgreSQL search: weighted full-text (name A, tags B, description C) or trigram word similarity on
the name (typos), filters, facets over the whole result set, and one page, in one statement.

The matching rows are materialised once (a CTE); the count, every facet and the page are read from
it, so facet counts and the total can never disagree with the hits.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import asyncpg

from storage import catalog_store
from storage.search.base import (PRICE_EDGES, SearchHit, SearchQuery, SearchResult, attribute_facet, price_facet,
                                 rating_facet, roll_up_categories)

_ORDER = {
    "relevance": "rank desc, id",
    "price_asc": "price_min_minor, id",
    "price_desc": "price_min_minor desc, id",
    "newest": "created_at desc, id desc",
    "rating": "rating_avg desc, rating_count desc, id",
}


def build_search_sql(query: SearchQuery) -> tuple[str, list[Any]]:
    """The one statement a search runs, and its arguments (pure: unit-tested)."""
    args: list[Any] = []

    def arg(value: Any, cast: str = "") -> str:
        args.append(value)
        return f"${len(args)}{cast}"

    conds = ["p.status = 'active'"]
    q = " ".join(query.q.split())
    rank = "0::float4"
    if q:
        qp = arg(q)
        tsq = f"websearch_to_tsquery('english', {qp})"
        conds.append(f"(p.search_doc @@ {tsq} or {qp} <% p.name)")
        rank = f"(ts_rank_cd(p.search_doc, {tsq}) + word_similarity({qp}, p.name))::float4"
    if query.category_ids is not None:
        conds.append(f"p.category_id = any({arg(list(query.category_ids), '::int8[]')})")
    if query.price_min is not None:
        conds.append(f"p.price_min_minor >= {arg(query.price_min, '::int8')}")
    if query.price_max is not None:
        conds.append(f"p.price_min_minor < {arg(query.price_max, '::int8')}")
    if query.rating_min is not None:
        conds.append(f"p.rating_avg >= {arg(query.rating_min, '::numeric')}")
    if query.in_stock is not None:
        conds.append(f"p.in_stock = {arg(query.in_stock, '::bool')}")
    for k, v in query.attributes:  # one containment test per pair (jsonb_path_ops index)
        conds.append(f"p.attributes @> {arg(json.dumps({k: v}), '::text::jsonb')}")
    order = _ORDER[query.effective_sort]
    edges = arg(list(PRICE_EDGES), "::int8[]")
    limit, offset = arg(query.per_page, "::int8"), arg(query.offset, "::int8")
    sql = f"""
with m as materialized (
    select p.id, p.slug, p.name, p.price_min_minor, p.price_max_minor, p.currency, p.image_urls[1] as image_url,
           p.in_stock, p.rating_avg, p.rating_count, p.category_id, p.created_at, p.attributes, {rank} as rank
    from products p
    where {' and '.join(conds)}
),
page as (
    select m.*, row_number() over (order by {order}) as ord from m order by {order} limit {limit} offset {offset}
)
select
    (select count(*) from m) as total,
    (select coalesce(json_agg(json_build_array(id, slug, name, price_min_minor, price_max_minor,
            (select max(v.compare_at_minor) from variants v where v.product_id = page.id),
            currency, image_url, in_stock, rating_avg, rating_count, category_id) order by ord), '[]')
     from page) as hits,
    (select coalesce(json_agg(json_build_array(category_id, n)), '[]')
     from (select category_id, count(*) n from m where category_id is not null group by 1) c) as categories,
    (select coalesce(json_agg(json_build_array(b, n)), '[]')
     from (select width_bucket(price_min_minor, {edges}) b, count(*) n from m group by 1) x) as prices,
    (select coalesce(json_agg(json_build_array(f, n)), '[]')
     from (select floor(rating_avg)::int f, count(*) n from m where rating_count > 0 group by 1) r) as ratings,
    (select coalesce(json_agg(json_build_array(in_stock, n)), '[]')
     from (select in_stock, count(*) n from m group by 1) s) as stock,
    (select coalesce(json_agg(json_build_array(k, v, n)), '[]')
     from (select e.key k, e.value v, count(*) n from m, jsonb_each_text(m.attributes) e group by 1, 2) a) as attrs
"""
    return sql, args


def build_suggest_sql(prefix: str, limit: int) -> tuple[str, list[Any]]:
    """Product names that contain the typed text (or, from three letters, look like it), best first;
    then category names. Short prefixes use the name's lower-case prefix index only."""
    p = " ".join(prefix.split())
    like = p.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if len(p) < 3:
        cond = "lower(p.name) like $2"
        pattern = like + "%"
    else:
        cond = "(p.name ilike $2 or $1 <% p.name)"
        pattern = "%" + like + "%"
    sql = f"""
(select 'product' as kind, p.name as text, p.slug, word_similarity($1, p.name) as score
 from products p where p.status = 'active' and {cond}
 order by (lower(p.name) like lower($1) || '%') desc, word_similarity($1, p.name) desc, p.name limit $3)
union all
(select 'category', c.name, c.slug, 1.0 from categories c where c.name ilike '%' || $1 || '%' order by c.name limit 3)
"""
    return sql, [p, pattern, limit]


class PostgresBackend:
    def __init__(self, pool: asyncpg.Pool, categories: catalog_store.CategorySource | None = None):
        self.pool = pool
        self.categories = categories or catalog_store.CategorySource(pool)

    async def search(self, query: SearchQuery) -> SearchResult:
        sql, args = build_search_sql(query)
        row = await self.pool.fetchrow(sql, *args)
        tree = await self.categories.get()
        direct = {cid: n for cid, n in json.loads(row["categories"])}
        if any(cid not in tree.names for cid in direct):
            tree = await self.categories.get(refresh=True)
        hits = [SearchHit(id=h[0], slug=h[1], name=h[2], price_min_minor=h[3], price_max_minor=h[4],
                          compare_at_minor=h[5], currency=h[6], image_url=h[7], in_stock=h[8],
                          rating_avg=float(h[9]), rating_count=h[10], category_id=h[11])
                 for h in json.loads(row["hits"])]
        stock = {bool(k): n for k, n in json.loads(row["stock"])}
        facets = {
            "category": roll_up_categories(direct, tree.parents, tree.names),
            "price": price_facet({b: n for b, n in json.loads(row["prices"])}),
            "rating": rating_facet({f: n for f, n in json.loads(row["ratings"])}),
            "in_stock": [{"value": v, "count": stock[v]} for v in (True, False) if stock.get(v)],
            "attributes": attribute_facet(json.loads(row["attrs"])),
        }
        return SearchResult(total=row["total"], page=query.page, per_page=query.per_page, hits=hits, facets=facets)

    async def suggest(self, prefix: str, limit: int = 8) -> list[dict[str, Any]]:
        if len(prefix.strip()) < 2:
            return []
        sql, args = build_suggest_sql(prefix, limit)
        rows = await self.pool.fetch(sql, *args)
        return [{"kind": r["kind"], "text": r["text"], "slug": r["slug"]} for r in rows]

    async def index_products(self, product_ids: Iterable[int]) -> int:
        return 0  # the products table is the index

    async def close(self) -> None:
        return None
