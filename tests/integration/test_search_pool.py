"""Searches on a pool from `create_search_pool` (the API's path: one round trip, settings carried
by the connections) answer exactly as searches that set the same settings in their own
transaction, for text, typo and text-free queries; and that pool cannot write."""
from __future__ import annotations

import asyncpg
import pytest

from storage.catalog_store import CategorySource, load_categories
from storage.search.base import SearchQuery, subtree_ids
from storage.search.postgres import SEARCH_SERVER_SETTINGS, PostgresBackend, create_search_pool
from tests.integration.catalog_helpers import make_category, make_product, uid

pytestmark = pytest.mark.integration


async def test_a_search_pool_answers_as_the_transaction_path_in_one_round_trip(stack, api, admin_headers, db):
    root = await make_category(api, admin_headers)
    sub = await make_category(api, admin_headers, parent=root)
    word = f"zorblex{uid()[:4]}"  # a word of this test's own: other tests' products never match it
    for i, (price, cat, attrs) in enumerate([(1500, root, {"color": "red"}), (2600, sub, {"color": "blue"}),
                                             (30000, sub, {"color": "red", "size": "l"})]):
        await make_product(api, admin_headers, name=f"{word.capitalize()} Lamp {i}", category=cat, prices=(price,),
                           attributes=attrs, description=f"A {word} for the desk.")
    async with db.acquire() as conn:
        tree = await load_categories(conn)
    ids = subtree_ids(tree.by_slug[root], tree.parents)
    queries = [SearchQuery(q=word, category_ids=ids, category=root),
               SearchQuery(q=word[:-1] + "q lamp", category_ids=ids, category=root, sort="price_desc"),  # a typo
               SearchQuery(q=word, category_ids=ids, category=root, in_stock=False, attributes=(("color", "red"),)),
               SearchQuery(category_ids=ids, category=root, price_min=2500),  # facet cells
               SearchQuery(category_ids=ids, category=root, price_min=2000, sort="rating", per_page=1, page=2)]
    categories = CategorySource(db)
    search_pool = await create_search_pool(stack.urls.database, max_size=1)
    pooled = PostgresBackend(db, categories, search_pool=search_pool)
    try:
        per_transaction = PostgresBackend(db, categories)
        totals = []
        for q in queries:
            answer = (await pooled.search(q)).to_dict()
            assert answer == (await per_transaction.search(q)).to_dict(), q
            totals.append(answer["total"])
        assert totals == [3, 3, 2, 2, 2]  # the compared answers are not empty

        async with search_pool.acquire() as conn:
            for name, value in SEARCH_SERVER_SETTINGS.items():
                assert await conn.fetchval(f"show {name}") == value
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute("update products set name = name where false")
    finally:
        await pooled.close()
    assert search_pool.is_closing()
