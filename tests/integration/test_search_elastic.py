"""The Elasticsearch backend's code path (index creation, bulk indexing fed by the catalog events,
search with filters, facets and sorting, suggestions) against a small local HTTP fake that answers
like Elasticsearch. No Elasticsearch server can run on these machines: the fake proves our requests
and response handling, not Elasticsearch's relevance. README "Search" says how to run against a cluster."""
from __future__ import annotations

import pytest

from actors.catalog_events import CatalogEventHandler
from storage.catalog_cache import CatalogCache
from storage.outbox import stream_name
from storage.search.base import SearchQuery, subtree_ids
from storage.search.elastic import ElasticBackend
from storage.cache import create_redis
from tests.conftest import async_wait_for
from tests.fake_elasticsearch import FakeElasticsearch
from tests.integration.catalog_helpers import make_category, make_product, set_stock, uid

pytestmark = pytest.mark.integration


@pytest.fixture
def fake_es():
    fake = FakeElasticsearch()
    fake.start()
    yield fake
    fake.stop()


async def catalog_entries(redis_url: str, product_ids: set[int]) -> list[tuple[str, dict]]:
    """This test's products' entries from the catalog stream, as the consumer receives them."""
    redis = create_redis(redis_url)
    try:
        raw = await redis.xrange(stream_name("catalog"), "-", "+")
    finally:
        await redis.aclose()
    entries = [{k.decode(): v.decode() for k, v in f.items()} for _, f in raw]
    keys = {f"product:{i}" for i in product_ids}
    return [(stream_name("catalog"), e) for e in entries if e["key"] in keys]


async def test_product_events_index_products_and_search_answers_like_the_postgres_backend(stack, api, admin_headers, db, fake_es):
    root = await make_category(api, admin_headers)
    sub = await make_category(api, admin_headers, parent=root)
    lamp = await make_product(api, admin_headers, name="Brass Table Lamp", category=sub, prices=(4500,),
                              attributes={"color": "gold"}, tags=["lighting"])
    rug = await make_product(api, admin_headers, name="Wool Rug", category=root, prices=(30000,))
    draft = await make_product(api, admin_headers, name="Secret Lamp", category=sub, status="draft")
    await set_stock(api, admin_headers, lamp["variants"][0]["sku"], 4)
    ids = {lamp["id"], rug["id"], draft["id"]}

    async def relayed():
        entries = await catalog_entries(stack.urls.redis, ids)
        return entries if len(entries) == 3 else None
    entries = await async_wait_for(relayed, what="the catalog events to reach the stream")

    backend = ElasticBackend(db, fake_es.url, index=f"test-{uid()}")
    redis = create_redis(stack.urls.redis)
    try:
        bumped = await CatalogEventHandler(db, CatalogCache(redis), backend).handle(entries)
        assert "surge:cver:listings" in bumped
        assert fake_es.index_created(backend.index)["mappings"]["properties"]["name"]["analyzer"] == "english"
        assert set(fake_es.docs(backend.index)) == {str(lamp["id"]), str(rug["id"])}  # the draft is not indexed

        tree = await backend.categories.get(refresh=True)
        found = await backend.search(SearchQuery(q="lamp", category_ids=subtree_ids(tree.by_slug[root], tree.parents),
                                                 category=root))
        assert [h.slug for h in found.hits] == [lamp["slug"]] and found.total == 1
        sent = fake_es.last_search["query"]["bool"]
        assert sent["must"][0]["multi_match"]["fuzziness"] == "AUTO"
        assert sent["filter"][0]["terms"]["category_id"] == sorted(subtree_ids(tree.by_slug[root], tree.parents))

        everything = await backend.search(SearchQuery(category_ids=(tree.by_slug[root], tree.by_slug[sub]),
                                                      sort="price_desc"))
        assert [h.slug for h in everything.hits] == [rug["slug"], lamp["slug"]]
        f = everything.facets
        assert {c["slug"]: c["count"] for c in f["category"]} == {root: 2, sub: 1}
        assert [(b["key"], b["count"]) for b in f["price"]] == [("2500-5000", 1), ("25000-50000", 1)]
        assert f["in_stock"] == [{"value": True, "count": 1}, {"value": False, "count": 1}]
        assert f["attributes"] == {"color": [{"value": "gold", "count": 1}]}

        filtered = await backend.search(SearchQuery(category_ids=(tree.by_slug[root], tree.by_slug[sub]),
                                                    attributes=(("color", "gold"),), in_stock=True))
        assert [h.slug for h in filtered.hits] == [lamp["slug"]]
        assert {"term": {"attr_pairs": "color=gold"}} in fake_es.last_search["query"]["bool"]["filter"]

        # archiving the rug: its event deletes the document
        await api.delete(f"/admin/products/{rug['id']}", headers=admin_headers)

        async def archived_event():
            more = await catalog_entries(stack.urls.redis, {rug["id"]})
            return more[-1:] if len(more) == 2 else None
        await CatalogEventHandler(db, CatalogCache(redis), backend).handle(
            await async_wait_for(archived_event, what="the archive event"))
        assert set(fake_es.docs(backend.index)) == {str(lamp["id"])}

        suggestions = await backend.suggest("brass ta")
        assert suggestions == [{"kind": "product", "text": "Brass Table Lamp", "slug": lamp["slug"]}]
    finally:
        await backend.close()
        await redis.aclose()
