"""Stripe webhooks into the checkout saga: localstripe's own deliveries, plus events we sign with the
endpoint's secret to replay, duplicate, reorder and forge them."""
import asyncio
import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest

from actors.payments import PaymentGateway
from tests.conftest import async_wait_for
from tests.integration.shop import THREE_DS_CARD, checkout_body, key, make_product

pytestmark = pytest.mark.integration


def signed(stack, event: dict, t: int | None = None, secret: str | None = None) -> tuple[bytes, dict]:
    body = json.dumps(event).encode()
    secret = secret or stack.stripe_webhook_secret()
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={t},v1={mac}", "Content-Type": "application/json"}


def intent_event(intent_id: str, number: str, cart_id: str, type_: str = "payment_intent.succeeded",
                 status: str = "succeeded", amount: int = 1000) -> dict:
    return {"id": "evt_" + uuid.uuid4().hex, "object": "event", "type": type_, "created": int(time.time()),
            "data": {"object": {"id": intent_id, "object": "payment_intent", "status": status, "amount": amount,
                                "currency": "usd", "metadata": {"order_number": number, "cart_id": cart_id}}}}


async def pending_3ds_order(stack, api, db, admin_headers):
    sku = await make_product(db, api, admin_headers, price_minor=1000)
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=60) as shopper:
        await shopper.post("/cart/items", json={"sku": sku})
        r = await shopper.post("/checkout", json=checkout_body(card=THREE_DS_CARD), headers={"Idempotency-Key": key()})
    assert r.status_code == 202, r.text
    order = r.json()
    row = await db.fetchrow("select cart_id, payment_intent_id from orders where number = $1", order["number"])
    return sku, order, row["cart_id"], row["payment_intent_id"]


async def authenticate(stack, order) -> None:
    gateway = PaymentGateway("sk_test_surge_local", api_base=stack.urls.stripe)
    try:
        a = order["next_action"]
        await gateway.complete_test_authentication(a["payment_intent_id"], a["client_secret"], success=True)
    finally:
        await gateway.aclose()


async def test_localstripes_webhook_marks_the_order_paid(stack, api, db, admin_headers):
    """After 3-D Secure nobody calls refresh: localstripe's payment_intent.succeeded does the work."""
    sku, order, _, _ = await pending_3ds_order(stack, api, db, admin_headers)
    await authenticate(stack, order)

    async def paid():
        return await db.fetchval("select status from orders where number = $1", order["number"]) == "paid"
    await async_wait_for(paid, timeout_s=30, what="the webhook to mark the order paid")
    assert await db.fetchval("select count(*) from stripe_events e join orders o on o.payment_intent_id = e.object_id "
                             "where o.number = $1", order["number"]) == 1


async def test_the_same_event_ten_times_at_once_is_applied_once(stack, api, db, admin_headers):
    sku, order, cart_id, intent_id = await pending_3ds_order(stack, api, db, admin_headers)
    await authenticate(stack, order)
    body, headers = signed(stack, intent_event(intent_id, order["number"], cart_id))
    results = await asyncio.gather(*(api.post("/webhooks/stripe", content=body, headers=headers) for _ in range(10)))
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert sum(1 for r in results if r.json().get("reason") == "duplicate") == 9
    assert await db.fetchval("select count(*) from outbox where key = $1 and type = 'OrderPaid'", order["number"]) == 1
    assert (await api.get("/inventory/levels", params={"sku": sku})).json()[sku]["sold"] == 1


async def test_forged_or_stale_signatures_are_400_and_change_nothing(stack, api, db, admin_headers):
    sku, order, cart_id, intent_id = await pending_3ds_order(stack, api, db, admin_headers)
    event = intent_event(intent_id, order["number"], cart_id)
    body, _ = signed(stack, event)
    _, forged = signed(stack, event, secret="whsec_not_the_secret")
    _, stale = signed(stack, event, t=int(time.time()) - 3600)
    _, good = signed(stack, event)
    for headers in (forged, stale, {"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"}, {}):
        r = await api.post("/webhooks/stripe", content=body, headers=headers)
        assert r.status_code == 400 and r.json()["code"] == "invalid_signature"
    r = await api.post("/webhooks/stripe", content=body + b" ", headers=good)  # tampered body
    assert r.status_code == 400
    assert await db.fetchval("select count(*) from stripe_events where event_id = $1", event["id"]) == 0
    assert await db.fetchval("select status from orders where number = $1", order["number"]) == "pending_payment"


async def test_events_are_hints_in_any_order_the_payment_intent_decides(stack, api, db, admin_headers):
    sku, order, cart_id, intent_id = await pending_3ds_order(stack, api, db, admin_headers)
    # a "succeeded" that is not true yet (the shopper has not authenticated): nothing is marked paid
    body, headers = signed(stack, intent_event(intent_id, order["number"], cart_id))
    assert (await api.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
    assert await db.fetchval("select status from orders where number = $1", order["number"]) == "pending_payment"
    await authenticate(stack, order)

    async def paid():
        return await db.fetchval("select status from orders where number = $1", order["number"]) == "paid"
    await async_wait_for(paid, timeout_s=30, what="paid")
    # a stale payment_failed arriving after success changes nothing
    body, headers = signed(stack, intent_event(intent_id, order["number"], cart_id, "payment_intent.payment_failed",
                                               "requires_payment_method"))
    assert (await api.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
    assert await db.fetchval("select status from orders where number = $1", order["number"]) == "paid"
    assert (await api.get("/inventory/levels", params={"sku": sku})).json()[sku]["sold"] == 1


async def test_events_for_unknown_orders_are_acknowledged_and_ignored(stack, api, db):
    body, headers = signed(stack, intent_event("pi_unknown", "ORD-999999999", "c_nope"))
    r = await api.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["applied"] is False
