"""Search relevance on the PostgreSQL backend through `GET /search`: typos, stemming, facet counts
that match the results they stand for, stable pagination, suggestions. Each test searches inside
a category of its own, so other tests' products never change the answers."""
from __future__ import annotations

import random

import pytest

from tests.conftest import async_wait_for
from tests.integration.catalog_helpers import make_category, make_product, set_stock, uid

pytestmark = pytest.mark.integration


async def search(api, **params) -> dict:
    r = await api.get("/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_typo_still_finds_the_product(api, admin_headers):
    cat = await make_category(api, admin_headers)
    want = await make_product(api, admin_headers, name="Wireless Headphones", category=cat)
    await make_product(api, admin_headers, name="Ceramic Teapot", category=cat)
    for typo in ("headphnes", "wireles headphones", "hedphones"):
        found = await search(api, q=typo, category=cat)
        assert [h["slug"] for h in found["hits"]] == [want["slug"]], typo


async def test_stemming_finds_run_when_searching_running(api, admin_headers):
    cat = await make_category(api, admin_headers)
    want = await make_product(api, admin_headers, name="Trail Run Shoe", category=cat)
    await make_product(api, admin_headers, name="Garden Hose", category=cat)
    assert [h["slug"] for h in (await search(api, q="running", category=cat))["hits"]] == [want["slug"]]


async def test_name_matches_rank_above_description_matches(api, admin_headers):
    cat = await make_category(api, admin_headers)
    in_desc = await make_product(api, admin_headers, name="Travel Mug", category=cat,
                                 description="Keeps coffee hot on a long lantern-lit evening.")
    in_name = await make_product(api, admin_headers, name="Camping Lantern", category=cat)
    in_tags = await make_product(api, admin_headers, name="Night Kit", category=cat, tags=["lantern"])
    hits = (await search(api, q="lantern", category=cat))["hits"]
    assert [h["slug"] for h in hits] == [in_name["slug"], in_tags["slug"], in_desc["slug"]]


async def test_facet_counts_equal_the_results_of_each_facet_value(api, admin_headers):
    root = await make_category(api, admin_headers)
    sub = await make_category(api, admin_headers, parent=root)
    specs = [(1500, root, {"color": "red"}, 5), (2600, sub, {"color": "red"}, 0), (2700, sub, {"color": "blue"}, 3),
             (12000, root, {"color": "blue", "size": "l"}, 0), (60000, sub, {"size": "l"}, 2)]
    for price, cat, attrs, stock in specs:
        p = await make_product(api, admin_headers, name=f"Facet Widget {uid()}", category=cat, prices=(price,),
                               attributes=attrs)
        if stock:
            await set_stock(api, admin_headers, p["variants"][0]["sku"], stock)

    async def stock_settled():
        return (await search(api, category=root, in_stock="true"))["total"] == 3
    await async_wait_for(stock_settled, what="stock levels to reach the products")

    base = await search(api, category=root, q="widget")
    assert base["total"] == 5
    facets = base["facets"]
    assert {c["slug"]: c["count"] for c in facets["category"]} == {root: 5, sub: 3}
    checks = [({"category": c["slug"]}, c["count"]) for c in facets["category"]]
    checks += [({"price_min": b["min"], **({"price_max": b["max"]} if b["max"] is not None else {})}, b["count"])
               for b in facets["price"]]
    checks += [({"in_stock": str(b["value"]).lower()}, b["count"]) for b in facets["in_stock"]]
    checks += [({"attr": f"{key}:{v['value']}"}, v["count"]) for key, vals in facets["attributes"].items() for v in vals]
    assert sum(b["count"] for b in facets["price"]) == 5 and len(checks) >= 10
    for extra, count in checks:
        params = {"category": root, "q": "widget", **extra}
        assert (await search(api, **params))["total"] == count, extra
    assert facets["attributes"]["color"] == [{"value": "blue", "count": 2}, {"value": "red", "count": 2}]


async def test_pagination_is_stable_and_complete(api, admin_headers):
    cat = await make_category(api, admin_headers)
    made = {(await make_product(api, admin_headers, category=cat, prices=(1000 + (i % 3),)))["slug"] for i in range(13)}
    for sort in ("price_asc", "newest", "relevance", "rating"):
        seen = []
        for page in (1, 2, 3):
            seen += [h["slug"] for h in (await search(api, category=cat, sort=sort, per_page=5, page=page))["hits"]]
        assert len(seen) == 13 and set(seen) == made, sort
        again = [h["slug"] for page in (1, 2, 3)
                 for h in (await search(api, category=cat, sort=sort, per_page=5, page=page))["hits"]]
        assert again == seen
    prices = [h["price_min_minor"] for h in (await search(api, category=cat, sort="price_desc", per_page=13))["hits"]]
    assert prices == sorted(prices, reverse=True)


async def test_suggestions_as_you_type(api, admin_headers):
    word = f"Zephyr{uid()[:6]}"
    p = await make_product(api, admin_headers, name=f"{word} Kettle")
    draft = await make_product(api, admin_headers, name=f"{word} Draft Kettle", status="draft")
    r = await api.get("/search/suggest", params={"q": word[:9].lower()})
    assert r.status_code == 200
    slugs = [s["slug"] for s in r.json() if s["kind"] == "product"]
    assert p["slug"] in slugs and draft["slug"] not in slugs
    assert (await api.get("/search/suggest", params={"q": "z"})).json() == []


async def test_bad_search_parameters_are_422(api):
    assert (await api.get("/search", params={"sort": "cheapest"})).status_code == 422
    assert (await api.get("/search", params={"attr": "nocolon"})).status_code == 422
    assert (await api.get("/search", params={"per_page": 1000})).status_code == 422
    r = await api.get("/search", params={"category": f"nope-{uid()}"})
    assert r.status_code == 422 and r.json()["code"] == "unknown_category"


async def test_search_is_rate_limited_per_client_address(stack):
    """The same app built in this process with a tight `search` limit (the shared stack lifts it,
    every test client being 127.0.0.1): past it, 429 problem+json with Retry-After."""
    import httpx

    from actors.directory import OwnerConfig
    from serve_app.app import create_api
    from serve_app.context import ApiConfig, AppContext
    from serve_app.settings import ServeSettings

    config = ApiConfig(owners=OwnerConfig(database_url=stack.urls.database, redis_url=stack.urls.redis,
                                          settings=stack.actors),
                       serve=ServeSettings(rate_limits={"search": "3/minute"}), auth=stack.auth_settings())
    ctx = await AppContext.create(config)
    try:
        address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"  # its own window
        transport = httpx.ASGITransport(app=create_api(ctx), client=(address, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            q = f"limit-{uid()}"
            answers = [await client.get("/search", params={"q": q}) for _ in range(4)]
            assert [r.status_code for r in answers[:3]] == [200, 200, 200]
            assert answers[3].status_code == 429 and "retry-after" in answers[3].headers
            assert answers[3].headers["content-type"].startswith("application/problem+json")
    finally:
        await ctx.close()
