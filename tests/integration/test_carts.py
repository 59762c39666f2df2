"""Carts through the HTTP API against the shared stack: guests by signed token, server-side prices,
coupons, saved-for-later, flash-sale holds, persistence across an owner's crash."""
import asyncio

import httpx
import pytest

from tests.conftest import async_wait_for, restart_owner
from tests.integration.shop import make_product

pytestmark = pytest.mark.integration


@pytest.fixture
async def shopper(stack):
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=30) as client:
        yield client


async def test_guest_cart_lives_behind_a_signed_cookie_and_prices_come_from_the_server(shopper, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers, price_minor=1999)
    r = await shopper.post("/cart/items", json={"sku": sku, "quantity": 2})
    assert r.status_code == 201, r.text
    cart = r.json()
    assert cart["lines"][0]["unit_price_minor"] == 1999 and cart["subtotal_minor"] == 3998 and cart["units"] == 2
    assert "surge_cart" in shopper.cookies
    # a price smuggled into the body is refused, not used
    r = await shopper.post("/cart/items", json={"sku": sku, "quantity": 1, "unit_price_minor": 1})
    assert r.status_code == 422
    again = (await shopper.get("/cart")).json()
    assert again["id"] == cart["id"] and again["units"] == 2
    # the price changes in the catalog: the cart shows the new price at once
    await db.execute("update variants set price_minor = 2500 where sku = $1", sku)
    assert (await shopper.get("/cart")).json()["subtotal_minor"] == 5000


async def test_a_forged_cart_token_is_ignored(stack, shopper, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers)
    cart_id = (await shopper.post("/cart/items", json={"sku": sku})).json()["id"]
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=30) as stranger:
        r = await stranger.get("/cart", headers={"X-Cart-Token": cart_id})  # the bare id, unsigned
        assert r.status_code == 200 and r.json()["lines"] == []
        r = await stranger.get("/cart", cookies={"surge_cart": shopper.cookies["surge_cart"] + "x"})
        assert r.json()["lines"] == []
        r = await stranger.get("/cart", cookies={"surge_cart": shopper.cookies["surge_cart"]})  # the real token does
        assert [l["sku"] for l in r.json()["lines"]] == [sku]


async def test_update_remove_save_for_later_and_back(shopper, api, db, admin_headers):
    a = await make_product(db, api, admin_headers, price_minor=1000)
    b = await make_product(db, api, admin_headers, price_minor=300)
    await shopper.post("/cart/items", json={"sku": a})
    await shopper.post("/cart/items", json={"sku": b, "quantity": 2})
    r = await shopper.put(f"/cart/items/{a}", json={"quantity": 3})
    assert {l["sku"]: l["quantity"] for l in r.json()["lines"]} == {a: 3, b: 2}
    r = await shopper.post(f"/cart/items/{b}/save-for-later")
    assert [l["sku"] for l in r.json()["lines"]] == [a] and r.json()["saved"][0]["sku"] == b
    r = await shopper.post(f"/cart/saved/{b}/move-to-cart")
    assert {l["sku"] for l in r.json()["lines"]} == {a, b} and r.json()["saved"] == []
    r = await shopper.delete(f"/cart/items/{a}")
    assert [l["sku"] for l in r.json()["lines"]] == [b]
    assert (await shopper.delete(f"/cart/items/{a}")).status_code == 404


async def test_quantity_rules(shopper, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers, cap=2)
    assert (await shopper.post("/cart/items", json={"sku": sku, "quantity": 0})).status_code == 422
    assert (await shopper.post("/cart/items", json={"sku": sku, "quantity": 3})).status_code == 409
    assert (await shopper.post("/cart/items", json={"sku": sku, "quantity": 2})).status_code == 201
    r = await shopper.post("/cart/items", json={"sku": sku, "quantity": 1})  # would make 3
    assert r.status_code == 409 and r.json()["code"] == "cap_exceeded"
    assert (await shopper.post("/cart/items", json={"sku": "NOPE-1"})).status_code == 404


async def test_draft_products_cannot_be_added(shopper, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers, status="draft")
    assert (await shopper.post("/cart/items", json={"sku": sku})).status_code == 404


async def test_save10_applies_and_unknown_codes_are_invalid(shopper, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers, price_minor=2000)
    await shopper.post("/cart/items", json={"sku": sku})
    r = await shopper.post("/cart/coupon", json={"code": "save10"})
    assert r.status_code == 200, r.text
    assert r.json()["discount_minor"] == 200 and r.json()["coupon_code"] == "SAVE10"
    r = await shopper.post("/cart/coupon", json={"code": "BOGUS"})
    assert r.status_code == 422 and r.json()["detail"].startswith("Invalid coupon")
    assert (await shopper.get("/cart")).json()["discount_minor"] == 200  # the good coupon stays
    r = await shopper.delete("/cart/coupon")
    assert r.json()["discount_minor"] == 0 and r.json()["coupon_code"] is None


async def test_expired_coupon_is_refused(shopper, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers)
    await shopper.post("/cart/items", json={"sku": sku})
    code = "OLD" + sku[-6:]
    r = await api.post("/admin/coupons", json={"code": code, "kind": "fixed", "value": 100, "starts_at": 1000,
                                               "ends_at": 2000}, headers=admin_headers)
    assert r.status_code == 201, r.text
    r = await shopper.post("/cart/coupon", json={"code": code})
    assert r.status_code == 422 and "expired" in r.json()["detail"]


async def test_flash_sale_add_holds_stock_with_a_countdown_and_remove_releases_it(shopper, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers, on_hand=3, flash=True)
    r = await shopper.post("/cart/items", json={"sku": sku, "quantity": 2})
    assert r.status_code == 201, r.text
    line = r.json()["lines"][0]
    assert line["hold"] and line["hold"]["seconds_left"] > 0
    levels = (await api.get("/inventory/levels", params={"sku": sku})).json()
    assert levels[sku]["available"] == 1
    # changing the quantity re-holds (new hold first, then the old one goes back)
    await shopper.put(f"/cart/items/{sku}", json={"quantity": 3})
    assert (await api.get("/inventory/levels", params={"sku": sku})).json()[sku]["available"] == 0
    await shopper.delete(f"/cart/items/{sku}")
    assert (await api.get("/inventory/levels", params={"sku": sku})).json()[sku]["available"] == 3
    assert await db.fetchval("select count(*) from reservation_lines where sku = $1 and state = 'held'", sku) == 0


async def test_flash_sale_sold_out_add_is_a_409(stack, shopper, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers, on_hand=1, flash=True)
    assert (await shopper.post("/cart/items", json={"sku": sku})).status_code == 201
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=30) as other:
        r = await other.post("/cart/items", json={"sku": sku})
        assert r.status_code == 409 and r.json()["code"] == "out_of_stock"
        assert (await other.get("/cart")).json()["lines"] == []


async def test_an_expired_hold_returns_the_stock_and_drops_the_line(api, db, admin_headers, directory):
    sku = await make_product(db, api, admin_headers, on_hand=5, flash=True)
    cart_id = "c_expiry_" + sku.lower()
    view = await directory.call_key("cart", cart_id, "set_item", cart_id, None, sku, 2, flash=True, hold_ttl_s=1.0)
    assert view["lines"][0]["holds"][0]["quantity"] == 2
    assert (await api.get("/inventory/levels", params={"sku": sku})).json()[sku]["available"] == 3

    async def returned():
        return (await api.get("/inventory/levels", params={"sku": sku})).json()[sku]["available"] == 5
    await async_wait_for(returned, timeout_s=20, what="the inventory shard to expire the hold")
    assert (await directory.call_key("cart", cart_id, "get", cart_id))["lines"] == []
    assert await db.fetchval("select count(*) from reservation_lines where sku = $1 and state = 'expired'", sku) == 1


async def test_cart_survives_its_owner_being_killed(shopper, api, db, admin_headers, directory, stack):
    sku = await make_product(db, api, admin_headers)
    cart = (await shopper.post("/cart/items", json={"sku": sku, "quantity": 4})).json()
    from actors.routing import shard_for

    await restart_owner(directory, "cart", shard_for(cart["id"], directory.shard_count("cart")))
    r = await shopper.get("/cart")  # loaded from Postgres by the new process
    assert r.status_code == 200
    view = r.json()
    assert view["units"] == 4 and view["lines"][0]["sku"] == sku


async def test_concurrent_adds_to_one_cart_are_not_lost(stack, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers, on_hand=500)
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=30) as s:
        await s.post("/cart/items", json={"sku": sku})
        results = await asyncio.gather(*(s.post("/cart/items", json={"sku": sku}) for _ in range(20)))
        assert all(r.status_code == 201 for r in results)
        assert (await s.get("/cart")).json()["units"] == 21
