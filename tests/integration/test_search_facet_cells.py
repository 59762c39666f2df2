"""Text-free listings read their total and facets from the facet cells of migration 0007: their
answers equal those of counting the matching products, after creates, price moves across buckets,
archiving, stock flips and attribute edits, whether or not the deltas have been compacted yet."""
from __future__ import annotations

import itertools

import pytest

from storage.catalog_store import CategorySource, load_categories
from storage.search.base import SearchQuery, subtree_ids
from storage.search.postgres import PostgresBackend, compact_facet_cells, uses_facet_cells
from tests.integration.catalog_helpers import make_category, make_product, set_stock, uid

pytestmark = pytest.mark.integration


async def queries(db, root: str) -> list[SearchQuery]:
    async with db.acquire() as conn:
        tree = await load_categories(conn)
    ids = subtree_ids(tree.by_slug[root], tree.parents)
    out = []
    for (pmin, pmax), rating, stock, attrs, sort in itertools.product(
            [(None, None), (2500, None), (0, 10000)], [None, 4], [None, True, False],
            [(), (("color", "red"),)], ["newest", "price_desc"]):
        out.append(SearchQuery(category_ids=ids, category=root, price_min=pmin, price_max=pmax, rating_min=rating,
                               in_stock=stock, attributes=attrs, sort=sort, per_page=3))
    return out


async def assert_cells_equal_counting(db, root: str, listed: int) -> int:
    categories = CategorySource(db)
    counting = PostgresBackend(db, categories, facet_cells=False, custom_plans=False)
    cells = PostgresBackend(db, categories)
    checked = 0
    everything = (await queries(db, root))[0]  # no price, rating, stock or attribute filter
    assert (await cells.search(everything)).total == listed  # the answers compared are not empty
    for q in await queries(db, root):
        assert uses_facet_cells(q)
        assert (await cells.search(q)).to_dict() == (await counting.search(q)).to_dict(), q
        checked += 1
    return checked


async def test_listing_facets_from_cells_equal_counting_rows_through_changes(api, admin_headers, db):
    root = await make_category(api, admin_headers)
    sub = await make_category(api, admin_headers, parent=root)
    made = []
    for price, cat, attrs in [(1500, root, {"color": "red"}), (2600, sub, {"color": "red"}),
                              (2700, sub, {"color": "blue"}), (12000, root, {"color": "blue", "size": "l"}),
                              (60000, sub, {"size": "l"})]:
        made.append(await make_product(api, admin_headers, name=f"Cell Widget {uid()}", category=cat,
                                       prices=(price,), attributes=attrs))
    assert await assert_cells_equal_counting(db, root, listed=5) == 72

    await set_stock(api, admin_headers, made[0]["variants"][0]["sku"], 4)  # a back-in-stock flip
    r = await api.patch(f"/admin/products/{made[1]['id']}", headers=admin_headers, json={  # 2600 -> 30000
        "variants": [{"sku": f"M-{uid()}", "price_minor": 30000}]})
    assert r.status_code == 200, r.text
    r = await api.patch(f"/admin/products/{made[2]['id']}", headers=admin_headers, json={"status": "archived"})
    assert r.status_code == 200, r.text
    r = await api.patch(f"/admin/products/{made[3]['id']}", headers=admin_headers,
                        json={"attributes": {"color": "red"}, "category": sub})
    assert r.status_code == 200, r.text
    async with db.acquire() as conn:  # one product rated 4.5 without the review flow (not a listing filter)
        await conn.execute("update products set rating_count = 2, rating_sum = 9, rating_avg = 4.5 where id = $1",
                           made[4]["id"])
    await assert_cells_equal_counting(db, root, listed=4)
    async with db.acquire() as conn:
        await compact_facet_cells(conn)
        assert await conn.fetchval("select count(*) from search_facet_cells where n = 0") == 0
    await assert_cells_equal_counting(db, root, listed=4)
    answer = await PostgresBackend(db).search(SearchQuery(category_ids=(await queries(db, root))[0].category_ids,
                                                          rating_min=4))
    assert answer.total == 1 and answer.hits[0].id == made[4]["id"]
