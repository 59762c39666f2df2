"""Signed-in shoppers: their cart follows them, a guest cart merges at sign-in, and every order
read or change checks its owner (another customer's order answers 404)."""
import httpx
import pytest

from tests.integration.shop import checkout_body, key, make_product

pytestmark = pytest.mark.integration


async def test_guest_cart_merges_into_the_customers_cart_at_sign_in(stack, api, db, admin_headers, make_customer):
    a = await make_product(db, api, admin_headers)
    b = await make_product(db, api, admin_headers)
    customer = await make_customer()
    # the customer already has one of `a` in their own cart
    r = await api.post("/cart/items", json={"sku": a}, headers=customer.headers)
    assert r.status_code == 201, r.text
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=30) as browser:
        await browser.post("/cart/items", json={"sku": a, "quantity": 2})
        await browser.post("/cart/items", json={"sku": b})
        r = await browser.post("/auth/sign-in", json={"email": customer.email, "password": customer.password})
        assert r.status_code == 200, r.text
        cart = (await browser.get("/cart")).json()  # now by the session cookie
    assert {l["sku"]: l["quantity"] for l in cart["lines"]} == {a: 3, b: 1}
    mine = (await api.get("/cart", headers=customer.headers)).json()
    assert mine["id"] == cart["id"]


async def test_orders_are_their_owners_only(api, db, admin_headers, make_customer):
    sku = await make_product(db, api, admin_headers, price_minor=1000)
    alice, bob = await make_customer(), await make_customer()
    await api.post("/cart/items", json={"sku": sku}, headers=alice.headers)
    r = await api.post("/checkout", json=checkout_body(email=None), headers={**alice.headers, "Idempotency-Key": key()})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["email"] == alice.email and order["order_token"] is None
    mine = await api.get("/orders", headers=alice.headers)
    assert [o["number"] for o in mine.json()] == [order["number"]]
    assert (await api.get("/orders", headers=bob.headers)).json() == []
    assert (await api.get("/orders")).status_code == 401
    for method, path in (("GET", f"/orders/{order['number']}"), ("POST", f"/orders/{order['number']}/cancel"),
                         ("POST", f"/orders/{order['number']}/payment/refresh")):
        assert (await api.request(method, path, headers=bob.headers)).status_code == 404, path
        assert (await api.request(method, path)).status_code == 404, path
    assert (await api.get(f"/orders/{order['number']}", headers=alice.headers)).status_code == 200
    assert (await api.get(f"/admin/orders/{order['number']}", headers=admin_headers)).status_code == 200
    assert (await api.get(f"/admin/orders/{order['number']}", headers=bob.headers)).status_code == 403
    assert await db.fetchval("select status from orders where number = $1", order["number"]) == "paid"


async def test_a_customers_cart_is_not_reachable_with_someone_elses_token(api, db, admin_headers, make_customer):
    sku = await make_product(db, api, admin_headers)
    alice, bob = await make_customer(), await make_customer()
    await api.post("/cart/items", json={"sku": sku, "quantity": 2}, headers=alice.headers)
    assert (await api.get("/cart", headers=bob.headers)).json()["lines"] == []
    assert (await api.delete(f"/cart/items/{sku}", headers=bob.headers)).status_code == 404
    assert (await api.get("/cart", headers=alice.headers)).json()["units"] == 2
