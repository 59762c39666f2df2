"""Admin catalog CRUD, public visibility, outbox events, and the read-through cache with its
invalidation by product and stock events (and its outage)."""
from __future__ import annotations

import socket
import uuid

import httpx
import pytest

from tests.conftest import async_wait_for
from tests.integration.catalog_helpers import make_category, make_product, set_stock, uid

pytestmark = pytest.mark.integration


async def test_admin_creates_a_product_with_variants_and_the_public_page_shows_it(api, admin_headers):
    cat = await make_category(api, admin_headers)
    p = await make_product(api, admin_headers, name="Harbor Canvas Tote", category=cat, prices=(2500, 2900),
                           tags=["bags"], attributes={"material": "canvas"}, image_urls=["https://img.example/t.jpg"],
                           seo_title="Canvas tote", description="A sturdy canvas bag.")
    assert p["price_min_minor"] == 2500 and p["price_max_minor"] == 2900 and p["status"] == "active"
    r = await api.get(f"/products/{p['slug']}")
    assert r.status_code == 200
    page = r.json()
    assert page["name"] == "Harbor Canvas Tote"
    assert [v["price_minor"] for v in page["variants"]] == [2500, 2900]
    assert all(v["in_stock"] is False for v in page["variants"])  # no stock received yet
    assert page["category"][-1]["slug"] == cat
    assert page["rating"] == {"average": 0.0, "count": 0}
    assert set(page["recommendations"]) == {"bought_together", "trending"}
    assert page["image_urls"] == ["https://img.example/t.jpg"] and page["seo_title"] == "Canvas tote"


async def test_draft_and_archived_products_are_not_public(api, admin_headers):
    draft = await make_product(api, admin_headers, status="draft")
    r = await api.get(f"/products/{draft['slug']}")
    assert r.status_code == 404 and r.json()["code"] == "product_not_found"
    assert r.headers["content-type"].startswith("application/problem+json")
    live = await make_product(api, admin_headers)
    assert (await api.get(f"/products/{live['slug']}")).status_code == 200
    assert (await api.delete(f"/admin/products/{live['id']}", headers=admin_headers)).json()["status"] == "archived"

    async def gone():
        return (await api.get(f"/products/{live['slug']}")).status_code == 404
    await async_wait_for(gone, what="archived product to disappear")
    found = (await api.get("/search", params={"q": live["name"]})).json()
    assert live["slug"] not in [h["slug"] for h in found["hits"]]


@pytest.mark.parametrize("body, field", [
    ({"price_minor": -1}, "price_minor"),
    ({"price_minor": 1000, "compare_at_minor": 900}, None),  # compare-at must be above the price
    ({"price_minor": 10.5}, "price_minor"),  # money is integers
])
async def test_invalid_variants_are_refused_with_problem_json(api, admin_headers, body, field):
    u = uid()
    r = await api.post("/admin/products", headers=admin_headers,
                       json={"slug": f"bad-{u}", "name": "Bad", "variants": [{"sku": f"B-{u}", **body}]})
    assert r.status_code == 422
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json") and problem["code"] == "validation"
    if field:
        assert any(field in e["loc"] for e in problem["errors"])


async def test_unknown_fields_are_refused(api, admin_headers):
    u = uid()
    r = await api.post("/admin/products", headers=admin_headers, json={
        "slug": f"x-{u}", "name": "X", "rating_avg": 5, "variants": [{"sku": f"X-{u}", "price_minor": 1}]})
    assert r.status_code == 422 and any(e["type"] == "extra_forbidden" for e in r.json()["errors"])
    p = await make_product(api, admin_headers)
    r = await api.patch(f"/admin/products/{p['id']}", headers=admin_headers, json={"in_stock": True})
    assert r.status_code == 422


async def test_slug_and_sku_conflicts_and_unknown_category(api, admin_headers):
    p = await make_product(api, admin_headers)
    u = uid()
    r = await api.post("/admin/products", headers=admin_headers,
                       json={"slug": p["slug"], "name": "Dup", "variants": [{"sku": f"D-{u}", "price_minor": 1}]})
    assert r.status_code == 409 and r.json()["code"] == "slug_taken"
    r = await api.post("/admin/products", headers=admin_headers, json={
        "slug": f"d-{u}", "name": "Dup", "variants": [{"sku": p["variants"][0]["sku"], "price_minor": 1}]})
    assert r.status_code == 409 and r.json()["code"] == "sku_taken"
    r = await api.post("/admin/products", headers=admin_headers, json={
        "slug": f"d-{u}", "name": "Dup", "category": f"nope-{u}", "variants": [{"sku": f"D-{u}", "price_minor": 1}]})
    assert r.status_code == 422 and r.json()["code"] == "unknown_category"
    # nothing of the refused products was written
    assert (await api.get(f"/products/d-{u}")).status_code == 404


async def test_admin_routes_need_admin_credentials(api):
    r = await api.post("/admin/products", json={})
    assert r.status_code == 401
    r = await api.post("/admin/products", json={}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


async def test_a_product_change_writes_its_event_in_the_outbox(api, admin_headers, db):
    p = await make_product(api, admin_headers)
    r = await api.patch(f"/admin/products/{p['id']}", headers=admin_headers, json={"name": "Renamed", "slug": f"r-{uid()}"})
    assert r.status_code == 200
    rows = await db.fetch("select type, payload from outbox where topic = 'catalog' and key = $1 order by id",
                          f"product:{p['id']}")
    assert [r["type"] for r in rows] == ["ProductCreated", "ProductUpdated"]
    assert rows[1]["payload"]["old_slug"] == p["slug"] and rows[1]["payload"]["slug"] == r.json()["slug"]


async def test_variants_replaced_by_update_and_price_range_follows(api, admin_headers):
    p = await make_product(api, admin_headers, prices=(1000, 2000))
    u = uid()
    r = await api.patch(f"/admin/products/{p['id']}", headers=admin_headers, json={
        "variants": [{"sku": f"N-{u}", "price_minor": 500, "compare_at_minor": 800}]})
    assert r.status_code == 200
    body = r.json()
    assert [v["sku"] for v in body["variants"]] == [f"N-{u}"]
    assert body["price_min_minor"] == 500 == body["price_max_minor"]


async def test_category_tree_lists_children_under_parents(api, admin_headers):
    root = await make_category(api, admin_headers)
    child = await make_category(api, admin_headers, parent=root)

    async def tree_has_child():
        tree = (await api.get("/categories")).json()
        node = next((c for c in tree if c["slug"] == root), None)
        return node is not None and [c["slug"] for c in node["children"]] == [child]
    await async_wait_for(tree_has_child, what="category tree to show the new child")
    # a category cannot move under its own subtree
    cid = next(c for c in (await api.get("/categories")).json() if c["slug"] == root)["id"]
    r = await api.put(f"/admin/categories/{cid}", headers=admin_headers, json={"slug": root, "name": root, "parent": child})
    assert r.status_code == 422


async def test_category_listing_includes_subcategories(api, admin_headers):
    root = await make_category(api, admin_headers)
    child = await make_category(api, admin_headers, parent=root)
    a = await make_product(api, admin_headers, category=root)
    b = await make_product(api, admin_headers, category=child)
    r = await api.get(f"/categories/{root}/products")
    assert r.status_code == 200 and {h["slug"] for h in r.json()["hits"]} == {a["slug"], b["slug"]}
    assert (await api.get(f"/categories/nope-{uid()}/products")).status_code == 404


# --- cache ----------------------------------------------------------------------------------------

async def cached(api, path: str, params: dict | None = None):
    """The answer if it came from the cache, else None (an event may still be on its way)."""
    r = await api.get(path, params=params)
    return r if r.headers["x-cache"] == "hit" else None


async def cached_page(api, slug: str):
    return await cached(api, f"/products/{slug}")


async def test_product_page_is_cached_then_invalidated_by_an_update(api, admin_headers):
    p = await make_product(api, admin_headers, name="Cached Lamp")
    first = await api.get(f"/products/{p['slug']}")
    assert first.headers["x-cache"] == "miss"
    # the creation's own event may still bump the version once; then reads settle on the cache
    second = await async_wait_for(lambda: cached_page(api, p["slug"]), what="a cache hit")
    assert second.json() == first.json()
    assert (await api.patch(f"/admin/products/{p['id']}", headers=admin_headers,
                            json={"name": "Cached Lamp II", "variants": [
                                {"sku": p["variants"][0]["sku"], "price_minor": 4200}]})).status_code == 200

    async def fresh():
        page = (await api.get(f"/products/{p['slug']}")).json()
        return page["name"] == "Cached Lamp II" and page["variants"][0]["price_minor"] == 4200
    await async_wait_for(fresh, what="the cached page to follow the update")


async def test_a_sell_out_invalidates_the_page_and_the_listing(api, admin_headers):
    cat = await make_category(api, admin_headers)
    p = await make_product(api, admin_headers, category=cat)
    sku = p["variants"][0]["sku"]
    await set_stock(api, admin_headers, sku, 1)

    async def in_stock():
        page = (await api.get(f"/products/{p['slug']}")).json()
        listing = (await api.get("/search", params={"category": cat})).json()
        return page["variants"][0]["in_stock"] and listing["hits"][0]["in_stock"]
    await async_wait_for(in_stock, what="stock to show on the page")
    await async_wait_for(lambda: cached_page(api, p["slug"]), what="the page from the cache")
    await async_wait_for(lambda: cached(api, "/search", {"category": cat}), what="the listing from the cache")
    r = await api.post("/inventory/reservations", json={"owner": f"cart:{uid()}", "lines": [{"sku": sku, "quantity": 1}]})
    assert r.status_code == 201

    async def sold_out():
        page = (await api.get(f"/products/{p['slug']}")).json()
        listing = (await api.get("/search", params={"category": cat})).json()
        return (not page["variants"][0]["in_stock"] and not listing["hits"][0]["in_stock"]
                and listing["facets"]["in_stock"] == [{"value": False, "count": 1}])
    await async_wait_for(sold_out, what="the sell-out to reach the cached page and listing")


async def test_the_lookup_script_reads_the_key_cache_key_makes_in_one_round_trip(stack):
    """Valkey runs LOOKUP_SCRIPT: its key is cache_key's for the same versions (one set by INCR, one
    missing), and what a miss stored is what the next read hits, byte for byte."""
    from storage.cache import create_redis
    from storage.catalog_cache import CatalogCache, cache_key

    redis = create_redis(stack.urls.redis)
    try:
        cache = CatalogCache(redis)
        versions = [f"surge:cver:test:{uid()}", f"surge:cver:test:{uid()}"]
        await redis.incr(versions[0])
        await redis.incr(versions[0])
        parts = ["lookup", uid()]

        async def load():
            return {"hits": [1, 2], "name": "Lookup Lamp"}

        stored, how = await cache.read_through_json("search", parts, versions, load)
        assert how == "miss"
        assert await redis.get(cache_key("search", parts, [b"2", None])) == stored
        assert await cache.read_through_json("search", parts, versions, load) == (stored, "hit")
        await cache.bump(versions[1:])
        assert (await cache.read_through_json("search", parts, versions, load))[1] == "miss"
        assert await redis.exists(cache_key("search", parts, [b"2", b"1"]))
    finally:
        await redis.aclose()


async def test_reads_answer_from_the_database_when_the_cache_is_down(stack, api, admin_headers):
    """The same app, built in this process with its cache pointed at a port where nothing listens:
    every read still answers 200 with the right data (X-Cache: bypass)."""
    from actors.directory import OwnerConfig
    from serve_app.app import create_api
    from serve_app.context import ApiConfig, AppContext
    from serve_app.settings import ServeSettings

    cat = await make_category(api, admin_headers)
    p = await make_product(api, admin_headers, name="Outage Kettle", category=cat)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    config = ApiConfig(owners=OwnerConfig(database_url=stack.urls.database, redis_url=f"redis://127.0.0.1:{dead}",
                                          settings=stack.actors), serve=ServeSettings(), auth=stack.auth_settings())
    ctx = await AppContext.create(config)
    try:
        app = create_api(ctx)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            for _ in range(2):
                r = await client.get(f"/products/{p['slug']}")
                assert r.status_code == 200 and r.json()["name"] == "Outage Kettle"
                assert r.headers["x-cache"] == "bypass"
            r = await client.get("/search", params={"category": cat})
            assert r.status_code == 200 and [h["slug"] for h in r.json()["hits"]] == [p["slug"]]
            assert (await client.get("/categories")).status_code == 200
            assert (await client.get(f"/products/nope-{uuid.uuid4().hex[:8]}")).status_code == 404
    finally:
        await ctx.close()


async def test_the_demo_product_is_public_in_stock_and_searchable(api):
    page = (await api.get("/products/sample-product")).json()
    assert page["variants"][0]["sku"] == "SAMPLE-1" and page["in_stock"] is True
    assert page["price_min_minor"] == 1999 and [c["slug"] for c in page["category"]] == ["apparel", "tops"]
    found = (await api.get("/search", params={"q": "sample product"})).json()
    assert "sample-product" in [h["slug"] for h in found["hits"]]
