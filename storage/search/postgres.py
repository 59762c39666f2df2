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
from storage.pool import create_pool
from storage.search.base import (PRICE_EDGES, SearchHit, SearchQuery, SearchResult, attribute_facet, price_facet,
                                 rating_facet, roll_up_categories)

WORK_MEM = "32MB"
# What every search runs with. The materialised matches of a broad query stay in memory instead of
# spilling to disk (work_mem). asyncpg prepares each statement once per connection; after five runs
# PostgreSQL may switch to a generic plan, which re-parses websearch_to_tsquery($1) on every row and
# cannot see how many rows a category or word matches: 1.5-2x slower on big matches, while planning
# every time costs ~1 ms (plan_cache_mode). Searches only read (default_transaction_read_only).
SEARCH_SERVER_SETTINGS = {"work_mem": WORK_MEM, "plan_cache_mode": "force_custom_plan",
                          "default_transaction_read_only": "on"}


def set_local_sql(custom_plans: bool = True) -> str:
    """SEARCH_SERVER_SETTINGS for one transaction on a shared connection (`SET LOCAL`; the
    transaction itself is opened read-only). `custom_plans=False`: plans as the plan cache picks them."""
    return "; ".join(f"set local {name} = '{value}'" for name, value in SEARCH_SERVER_SETTINGS.items()
                     if name != "default_transaction_read_only" and (custom_plans or name != "plan_cache_mode"))


_ORDER = {  # every sort ends with the id: pages never overlap or skip
    "relevance": [("rank", "desc"), ("id", "asc")],
    "price_asc": [("price_min_minor", "asc"), ("id", "asc")],
    "price_desc": [("price_min_minor", "desc"), ("id", "asc")],
    "newest": [("created_at", "desc"), ("id", "desc")],
    "rating": [("rating_avg", "desc"), ("rating_count", "desc"), ("id", "asc")],
}


def _order_by(sort: str, prefix: str = "") -> str:
    return ", ".join(f"{prefix}{col} {direction}" for col, direction in _ORDER[sort])


def _conditions(query: SearchQuery, arg) -> list[str]:
    """The filters as SQL on products `p`, each value a parameter (no text query)."""
    conds = ["p.status = 'active'"]
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
    return conds


def _select_answer(page_order: str, facet_source: str, count: str, having: str = "") -> str:
    """The answer's three columns from CTEs `page` (the page's ids) and the facet rows of
    `facet_source` (one row per product, or per cell with `count` its products)."""
    return f"""
f as (
    select grouping(category_id, b, fl, in_stock, attributes) as g, category_id, b, fl, in_stock, attributes,
           {count} as n
    from {facet_source} x
    group by grouping sets ((category_id), (b), (fl), (in_stock), (attributes), ()){having}
)
select
    (select coalesce(json_agg(json_build_array(p.id, p.slug, p.name, p.price_min_minor, p.price_max_minor,
            (select max(v.compare_at_minor) from variants v where v.product_id = p.id),
            p.currency, p.image_urls[1], p.in_stock, p.rating_avg, p.rating_count, p.category_id) order by {page_order}), '[]')
     from page join products p on p.id = page.id) as hits,
    (select coalesce(json_agg(json_build_array(g, category_id, b, fl, in_stock, n)), '[]')
     from f where g <> 30) as facets,
    (select coalesce(json_agg(json_build_array(k, v, n)), '[]')
     from (select e.key as k, e.value as v, sum(f.n)::int8 as n
           from f, jsonb_each_text(f.attributes) e where f.g = 30 group by 1, 2) a) as attrs
"""


def build_search_sql(query: SearchQuery) -> tuple[str, list[Any]]:
    """The one statement a search runs, and its arguments (pure: unit-tested).

    Cost model (EXPLAIN ANALYZE on 100,000 products): the matches are materialised narrow (no text
    columns); every facet and the total come from one pass over them (GROUPING SETS); only the page's
    rows are joined back for names and prices. Relevance is computed only when sorting by it, and
    the trigram similarity only for rows the full-text query missed (typos): `fulltext OR trigram`
    is one bitmap (BitmapOr) whose re-check stops at the full-text match. (Typo matches as a second
    UNION ALL branch "where trigram and not fulltext" was tried and was 2-4x slower for words that
    are in many names: every trigram candidate then pays word_similarity, ~10 us.)"""
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
        # `name %> q`, not the equal `q <% name`: the trigram index's own spelling, so PostgreSQL sees
        # the OR is the bitmap's condition and does not evaluate it again on every matched row (it
        # cannot prove that for a STABLE operator): 18,500 matches 26 -> 17 ms in EXPLAIN ANALYZE
        conds.append(f"(p.search_doc @@ {tsq} or p.name %> {qp})")
        if query.effective_sort == "relevance":
            # full-text matches first (name A > tags B > description C), then typo matches by similarity
            rank = (f"(case when p.search_doc @@ {tsq} then 1 + ts_rank_cd(p.search_doc, {tsq}) "
                    f"else word_similarity({qp}, p.name) end)::float4")
    conds += _conditions(query, arg)[1:]
    cols = ("p.id, p.category_id, p.price_min_minor, p.rating_avg, p.rating_count, p.in_stock, p.created_at, "
            "p.attributes")
    matches = f"select {cols}, {rank} as rank from products p where {' and '.join(conds)}"
    order = _order_by(query.effective_sort)
    page_order = _order_by(query.effective_sort, "page.")
    edges = arg(list(PRICE_EDGES), "::int8[]")
    limit, offset = arg(query.per_page, "::int8"), arg(query.offset, "::int8")
    sql = f"""
with m as materialized (
    {matches}
),
page as (  -- ORDER BY + LIMIT straight on the matches: a top-N sort, not a sort of every match
    select * from m order by {order} limit {limit} offset {offset}
),""" + _select_answer(page_order, f"""(select category_id, width_bucket(price_min_minor, {edges}) as b,
                 case when rating_count > 0 then floor(rating_avg)::int end as fl, in_stock, attributes
          from m)""", "count(*)")
    return sql, args


def uses_facet_cells(query: SearchQuery) -> bool:
    """Whether the facets can be read from search_facet_cells (migration 0007): no text, and price
    bounds on bucket edges, so that every filter holds for a whole cell or for none of it."""
    return (not query.q.strip()
            and all(bound is None or bound in PRICE_EDGES for bound in (query.price_min, query.price_max)))


def build_listing_sql(query: SearchQuery) -> tuple[str, list[Any]]:
    """A text-free search (`uses_facet_cells`): the same three columns as `build_search_sql`, exactly
    equal, with the total and facets summed from the cells and deltas of migration 0007 (a root
    category's ~5,000 cells instead of its ~20,000 products) and the page read in its sort's order
    from the products (an index scan that stops at the page, or a top-N sort). Pure: unit-tested."""
    args: list[Any] = []

    def arg(value: Any, cast: str = "") -> str:
        args.append(value)
        return f"${len(args)}{cast}"

    conds = _conditions(query, arg)
    # the same filters on a cell: price bounds are bucket edges, a whole rating r is floor(avg) >= r
    cell: list[str] = []
    if query.category_ids is not None:
        cell.append(f"category_id = any({arg(list(query.category_ids), '::int8[]')})")
    if query.price_min is not None:
        cell.append(f"price_bucket >= search_price_bucket({arg(query.price_min, '::int8')})")
    if query.price_max is not None:
        cell.append(f"price_bucket < search_price_bucket({arg(query.price_max, '::int8')})")
    if query.rating_min is not None:
        cell.append(f"rating_floor >= {arg(query.rating_min, '::int4')}")
    if query.in_stock is not None:
        cell.append(f"in_stock = {arg(query.in_stock, '::bool')}")
    for k, v in query.attributes:
        cell.append(f"attributes @> {arg(json.dumps({k: v}), '::text::jsonb')}")
    where = " and ".join(cell) or "true"
    order = _order_by(query.effective_sort)
    page_order = _order_by(query.effective_sort, "page.")
    limit, offset = arg(query.per_page, "::int8"), arg(query.offset, "::int8")
    sql = f"""
with page as (
    select p.id, p.price_min_minor, p.created_at, p.rating_avg, p.rating_count from products p
    where {' and '.join(conds)} order by {order} limit {limit} offset {offset}
),
c as (
    select category_id, price_bucket as b, case when rated then rating_floor end as fl, in_stock, attributes, n
    from search_facet_cells where {where}
    union all
    select category_id, price_bucket, case when rated then rating_floor end, in_stock, attributes, n
    from search_facet_deltas where {where}
),""" + _select_answer(page_order, "c", "sum(n)::int8",
                          # a cell emptied by deltas not yet compacted counts nothing, as a missing row would
                          "\n    having sum(n) <> 0")
    return sql, args


# grouping() bits, high to low: category_id, b, fl, in_stock, attributes (1 = not grouped by it)
_G_CATEGORY, _G_PRICE, _G_RATING, _G_STOCK, _G_TOTAL = 0b01111, 0b10111, 0b11011, 0b11101, 0b11111


def split_facet_rows(rows: list[list[Any]]) -> tuple[int, dict[int, int], dict[int, int], dict[int, int], dict[bool, int]]:
    """GROUPING SETS rows -> (total, per category, per price bucket, per rating floor, per in-stock) (pure)."""
    total, cats, prices, ratings, stock = 0, {}, {}, {}, {}
    for g, cid, bucket, floor_, in_stock, n in rows:
        if g == _G_TOTAL:
            total = n
        elif g == _G_CATEGORY and cid is not None:
            cats[cid] = n
        elif g == _G_PRICE and bucket is not None:
            prices[bucket] = n
        elif g == _G_RATING and floor_ is not None:
            ratings[floor_] = n
        elif g == _G_STOCK and in_stock is not None:
            stock[bool(in_stock)] = n
    return total, cats, prices, ratings, stock


def build_suggest_sql(prefix: str, limit: int) -> tuple[str, list[Any]]:
    """Product names that contain the typed text (or, from three letters, look like it), best first;
    then category names. Short prefixes use the name's lower-case prefix index only."""
    p = " ".join(prefix.split())
    like = p.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if len(p) < 3:
        cond = "lower(p.name) like $2"
        pattern = like + "%"
    else:
        cond = "(p.name ilike $2 or p.name %> $1)"  # %>: see build_search_sql
        pattern = "%" + like + "%"
    sql = f"""
(select 'product' as kind, p.name as text, p.slug, word_similarity($1, p.name) as score
 from products p where p.status = 'active' and {cond}
 order by (lower(p.name) like lower($1) || '%') desc, word_similarity($1, p.name) desc, p.name limit $3)
union all
(select 'category', c.name, c.slug, 1.0 from categories c where c.name ilike '%' || $1 || '%' order by c.name limit 3)
"""
    return sql, [p, pattern, limit]


async def compact_facet_cells(conn) -> int:
    """Fold the listing facet deltas into their cells (migration 0007); returns the deltas folded.
    Counts read before and after are equal: this only keeps what readers add up short."""
    return await conn.fetchval("select search_facets_compact()")


async def create_search_pool(dsn: str, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """A pool whose connections carry SEARCH_SERVER_SETTINGS from connect time, so that a search is
    one round trip (the query) instead of four (BEGIN, SET LOCAL, the query, COMMIT); like every
    Surge pool it releases without a reset query (`storage/pool.py`)."""
    return await create_pool(dsn, min_size=min_size, max_size=max_size, server_settings=SEARCH_SERVER_SETTINGS)


class PostgresBackend:
    def __init__(self, pool: asyncpg.Pool, categories: catalog_store.CategorySource | None = None,
                 facet_cells: bool = True, custom_plans: bool = True, search_pool: asyncpg.Pool | None = None):
        """`search_pool`: one from `create_search_pool`, for searches in one round trip; without it
        each search sets SEARCH_SERVER_SETTINGS itself in a transaction on `pool` (same answers)."""
        self.pool = pool
        self.search_pool = search_pool
        # Both False: the path before migration 0007 (every search counts its matching rows, plans as
        # the plan cache picks them), kept for comparisons; answers are equal.
        self.facet_cells = facet_cells
        self.settings = set_local_sql(custom_plans)
        self.categories = categories or catalog_store.CategorySource(pool)

    async def search(self, query: SearchQuery) -> SearchResult:
        if self.facet_cells and uses_facet_cells(query):
            sql, args = build_listing_sql(query)
        else:
            sql, args = build_search_sql(query)
        if self.search_pool is not None:
            row = await self.search_pool.fetchrow(sql, *args)
        else:
            async with self.pool.acquire() as conn, conn.transaction(readonly=True):
                await conn.execute(self.settings)
                row = await conn.fetchrow(sql, *args)
        total, direct, prices, ratings, stock = split_facet_rows(json.loads(row["facets"]))
        tree = await self.categories.get()
        if any(cid not in tree.names for cid in direct):
            tree = await self.categories.get(refresh=True)
        hits = [SearchHit(id=h[0], slug=h[1], name=h[2], price_min_minor=h[3], price_max_minor=h[4],
                          compare_at_minor=h[5], currency=h[6], image_url=h[7], in_stock=h[8],
                          rating_avg=float(h[9]), rating_count=h[10], category_id=h[11])
                 for h in json.loads(row["hits"])]
        facets = {
            "category": roll_up_categories(direct, tree.parents, tree.names),
            "price": price_facet(prices),
            "rating": rating_facet(ratings),
            "in_stock": [{"value": v, "count": stock[v]} for v in (True, False) if stock.get(v)],
            "attributes": attribute_facet(json.loads(row["attrs"])),
        }
        return SearchResult(total=total, page=query.page, per_page=query.per_page, hits=hits, facets=facets)

    async def suggest(self, prefix: str, limit: int = 8) -> list[dict[str, Any]]:
        if len(prefix.strip()) < 2:
            return []
        sql, args = build_suggest_sql(prefix, limit)
        rows = await self.pool.fetch(sql, *args)
        return [{"kind": r["kind"], "text": r["text"], "slug": r["slug"]} for r in rows]

    async def index_products(self, product_ids: Iterable[int]) -> int:
        return 0  # the products table is the index

    async def close(self) -> None:
        if self.search_pool is not None:
            await self.search_pool.close()
