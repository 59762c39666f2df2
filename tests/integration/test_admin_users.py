"""Admin users: list and search, the support view (orders and carts), roles, deactivation, and the
audit log that records who did each of them."""
from __future__ import annotations

import uuid

import pytest

from tests.conftest import ADMIN_TOKEN, DEMO_ADMIN, sign_in

pytestmark = pytest.mark.integration


async def admin_id(api, admin_user_headers) -> str:
    return (await api.get("/account", headers=admin_user_headers)).json()["id"]


async def test_search_finds_customers_by_part_of_their_email_or_name(api, make_customer, admin_user_headers):
    tag = uuid.uuid4().hex[:10]
    customer = await make_customer(name=f"Zed {tag} Example")
    await make_customer(name="Someone Else")
    r = await api.get("/admin/users", params={"q": tag}, headers=admin_user_headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 1 and [u["id"] for u in page["items"]] == [customer.user_id]
    r = await api.get("/admin/users", params={"q": customer.email.split("@")[0].upper()}, headers=admin_user_headers)
    assert [u["email"] for u in r.json()["items"]] == [customer.email]
    # LIKE wildcards in the query are literal, not "match everything"
    assert (await api.get("/admin/users", params={"q": "%"}, headers=admin_user_headers)).json()["total"] == 0


async def test_listing_filters_by_role_and_pages(api, make_customer, admin_user_headers):
    for _ in range(4):
        await make_customer()
    admins = (await api.get("/admin/users", params={"role": "admin"}, headers=admin_user_headers)).json()
    assert DEMO_ADMIN[0] in {u["email"] for u in admins["items"]} and all(u["role"] == "admin" for u in admins["items"])
    first = (await api.get("/admin/users", params={"role": "customer", "limit": 2}, headers=admin_user_headers)).json()
    second = (await api.get("/admin/users", params={"role": "customer", "limit": 2, "offset": 2},
                            headers=admin_user_headers)).json()
    assert len(first["items"]) == 2 and first["total"] >= 4
    assert not {u["id"] for u in first["items"]} & {u["id"] for u in second["items"]}


async def test_support_view_shows_a_customers_orders_and_carts(api, make_customer, admin_user_headers, db):
    customer = await make_customer()
    other = await make_customer()
    cid = uuid.UUID(customer.user_id)
    cart_id = f"cart-{uuid.uuid4().hex[:10]}"
    await db.execute("insert into carts (id, customer_id, doc) values ($1, $2, $3)", cart_id, cid,
                     {"lines": [{"sku": "SAMPLE-1", "quantity": 2}]})
    await db.execute("insert into carts (id, customer_id, doc) values ($1, $2, $3)", f"cart-{uuid.uuid4().hex[:10]}",
                     uuid.UUID(other.user_id), {"lines": []})
    number = f"ORD-{uuid.uuid4().int % 10**12}"
    await db.execute(
        "insert into orders (number, cart_id, idempotency_key, customer_id, email, status, currency, subtotal_minor, "
        "total_minor, shipping_method, shipping_address, reservation_ids, payment_key, expires_at, request_fingerprint) "
        "values ($1, $2, $3, $4, $5, 'paid', 'USD', 1999, 1999, 'standard', $6, array[$7], $8, now() + interval '1 hour', $7)",
        number, cart_id, uuid.uuid4().hex, cid, customer.email, {"city": "x"}, uuid.uuid4().hex, uuid.uuid4().hex)
    orders = await api.get(f"/admin/users/{customer.user_id}/orders", headers=admin_user_headers)
    assert orders.status_code == 200 and [o["number"] for o in orders.json()] == [number]
    assert orders.json()[0]["total_minor"] == 1999
    carts = await api.get(f"/admin/users/{customer.user_id}/carts", headers=admin_user_headers)
    assert [c["id"] for c in carts.json()] == [cart_id] and carts.json()[0]["doc"]["lines"][0]["quantity"] == 2
    assert (await api.get(f"/admin/users/{uuid.uuid4()}/orders", headers=admin_user_headers)).status_code == 404


async def test_role_change_takes_effect_and_is_audited_with_who_did_it(api, make_customer, admin_user_headers):
    me = await admin_id(api, admin_user_headers)
    customer = await make_customer()
    assert (await api.get("/admin/users", headers=customer.headers)).status_code == 403
    r = await api.put(f"/admin/users/{customer.user_id}/role", json={"role": "admin"}, headers=admin_user_headers)
    assert r.status_code == 200 and r.json()["role"] == "admin"
    # the same unexpired token now carries admin rights: roles are read from the account, not the token
    assert (await api.get("/admin/users", headers=customer.headers)).status_code == 200
    r = await api.put(f"/admin/users/{customer.user_id}/role", json={"role": "vendor"}, headers=admin_user_headers)
    assert r.json()["role"] == "vendor"
    assert (await api.get("/admin/users", headers=customer.headers)).status_code == 403
    log = (await api.get("/admin/audit-log", params={"target_id": customer.user_id, "action": "user.role"},
                         headers=admin_user_headers)).json()
    assert [(e["detail"]["from"], e["detail"]["to"]) for e in log] == [("admin", "vendor"), ("customer", "admin")]
    assert all(e["actor_id"] == me and e["actor_email"] == DEMO_ADMIN[0] for e in log)


async def test_role_change_refuses_unknown_roles_and_extra_fields(api, make_customer, admin_user_headers):
    customer = await make_customer()
    r = await api.put(f"/admin/users/{customer.user_id}/role", json={"role": "superuser"}, headers=admin_user_headers)
    assert r.status_code == 422
    r = await api.put(f"/admin/users/{customer.user_id}/role", json={"role": "vendor", "status": "deactivated"},
                      headers=admin_user_headers)
    assert r.status_code == 422


async def test_an_admin_cannot_lock_themselves_out(api, admin_user_headers):
    me = await admin_id(api, admin_user_headers)
    assert (await api.post(f"/admin/users/{me}/deactivate", headers=admin_user_headers)).status_code == 409
    r = await api.put(f"/admin/users/{me}/role", json={"role": "customer"}, headers=admin_user_headers)
    assert r.status_code == 409
    assert (await api.get("/account", headers=admin_user_headers)).json()["role"] == "admin"


async def test_deactivate_and_reactivate_are_audited_and_revoke_sessions(api, make_customer, admin_user_headers, db):
    me = await admin_id(api, admin_user_headers)
    customer = await make_customer()
    r = await api.post(f"/admin/users/{customer.user_id}/deactivate", headers=admin_user_headers)
    assert r.status_code == 200 and r.json()["status"] == "deactivated"
    assert await db.fetchval("select count(*) from refresh_tokens where user_id = $1 and revoked_at is null",
                             uuid.UUID(customer.user_id)) == 0
    r = await api.post(f"/admin/users/{customer.user_id}/reactivate", headers=admin_user_headers)
    assert r.json()["status"] == "active"
    await sign_in(str(api.base_url), customer.email, customer.password)
    log = (await api.get("/admin/audit-log", params={"target_id": customer.user_id}, headers=admin_user_headers)).json()
    assert [e["action"] for e in log][:2] == ["user.reactivate", "user.deactivate"]
    assert log[1]["detail"]["sessions_revoked"] >= 1 and log[1]["actor_id"] == me


async def test_support_reads_are_audited_too_and_the_service_token_is_recorded_as_such(api, make_customer,
                                                                                       admin_user_headers):
    customer = await make_customer()
    assert (await api.get(f"/admin/users/{customer.user_id}", headers=admin_user_headers)).status_code == 200
    service = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (await api.get(f"/admin/users/{customer.user_id}/carts", headers=service)).status_code == 200
    log = (await api.get("/admin/audit-log", params={"target_id": customer.user_id}, headers=admin_user_headers)).json()
    assert [(e["action"], e["actor_email"], e["actor_id"] is None) for e in log] == [
        ("user.carts.view", "service-token", True), ("user.view", DEMO_ADMIN[0], False)]


async def test_the_audit_log_pages_newest_first(api, make_customer, admin_user_headers):
    customer = await make_customer()
    for _ in range(3):
        await api.get(f"/admin/users/{customer.user_id}", headers=admin_user_headers)
    first = (await api.get("/admin/audit-log", params={"target_id": customer.user_id, "limit": 2},
                           headers=admin_user_headers)).json()
    rest = (await api.get("/admin/audit-log", params={"target_id": customer.user_id, "before_id": first[-1]["id"]},
                          headers=admin_user_headers)).json()
    ids = [e["id"] for e in first + rest]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
