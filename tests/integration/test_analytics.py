"""The Analytics actor against the real stack: its figures equal what was sold, through a relay
crash, and a redelivered event adds nothing."""
import os
import signal

import pytest

from storage.cache import create_redis
from storage.outbox import stream_name
from tests.conftest import async_wait_for
from tests.integration.shop import make_product
from tests.integration.test_private_topics import buy

pytestmark = pytest.mark.integration


async def sku_figures(api, admin_headers, skus) -> dict:
    r = await api.get("/admin/analytics/products", params={"grain": "day", "sku": skus}, headers=admin_headers)
    assert r.status_code == 200, r.text
    return {p["sku"]: (p["units"], p["revenue_minor"]) for p in r.json()}


async def test_figures_equal_what_was_sold_even_when_the_relay_dies_mid_stream(
        stack, api, db, admin_headers, make_customer, directory):
    customer = await make_customer()
    a = await make_product(db, api, admin_headers, price_minor=1250, on_hand=50)
    b = await make_product(db, api, admin_headers, price_minor=399, on_hand=50)
    before = (await api.get("/admin/analytics/summary", headers=admin_headers)).json()
    plan = [(a, 2), (b, 3), (a, 1), (b, 1)]
    orders = []
    for i, (sku, quantity) in enumerate(plan):
        if i == 2:  # the relay dies between orders: what it had not published yet must still count once
            os.kill((await directory.call("relay", 0, "ping"))["pid"], signal.SIGKILL)
        orders.append(await buy(stack, sku, quantity, customer.headers))
    expected = {a: (3, 3 * 1250), b: (4, 4 * 399)}

    async def counted():
        return await sku_figures(api, admin_headers, [a, b]) == expected
    await async_wait_for(counted, timeout_s=60, interval_s=0.3, what="the analytics figures of the sold SKUs")
    row = await db.fetchrow("select orders, spent_minor from analytics_customers where customer_id = $1::uuid",
                            customer.user_id)
    assert (row["orders"], row["spent_minor"]) == (4, sum(o["total_minor"] for o in orders))
    after = (await api.get("/admin/analytics/summary", headers=admin_headers)).json()
    assert after["orders_paid"] - before["orders_paid"] >= 4
    assert after["revenue_minor"]["USD"] - before["revenue_minor"].get("USD", 0) >= sum(o["total_minor"] for o in orders)
    assert after["funnel"]["checkout"] >= after["funnel"]["paid"] >= 4
    insights = (await api.get("/admin/analytics/customers", headers=admin_headers)).json()
    assert insights["repeat_customers"] >= 1 and 0 < insights["repeat_rate"] <= 1
    assert (await api.get("/admin/analytics/summary")).status_code == 401  # admins only


async def test_a_redelivered_event_adds_nothing(stack, api, db, admin_headers, make_customer, directory):
    customer = await make_customer()
    sku = await make_product(db, api, admin_headers, price_minor=800)
    order = await buy(stack, sku, 2, customer.headers)

    async def counted():
        return await sku_figures(api, admin_headers, [sku]) == {sku: (2, 1600)}
    await async_wait_for(counted, timeout_s=60, interval_s=0.3, what="the order in the analytics")
    redis = create_redis(stack.urls.redis)
    try:  # the relay's at-least-once: the same entries again, as after a crash before marking them published
        entries = [f for _, f in await redis.xrange(stream_name("order"), "-", "+") if f[b"key"] == order["number"].encode()]
        assert len(entries) == 2
        duplicates = (await directory.call("analytics", 0, "ping"))["duplicates"]
        for fields in entries:
            await redis.xadd(stream_name("order"), fields)
    finally:
        await redis.aclose()

    async def seen_again():
        return (await directory.call("analytics", 0, "ping"))["duplicates"] >= duplicates + 2
    await async_wait_for(seen_again, timeout_s=30, what="the analytics actor to read the redelivered entries")
    assert await sku_figures(api, admin_headers, [sku]) == {sku: (2, 1600)}
    row = await db.fetchrow("select orders, spent_minor from analytics_customers where customer_id = $1::uuid",
                            customer.user_id)
    assert (row["orders"], row["spent_minor"]) == (1, order["total_minor"])


async def test_a_sell_out_raises_an_alert_on_the_admin_topic_and_in_the_alerts_api(stack, api, db, admin_headers):
    import json

    from websockets.asyncio.client import connect

    from tests.conftest import ADMIN_TOKEN
    from tests.integration.test_private_topics import next_on, subscribe

    sku = await make_product(db, api, admin_headers, on_hand=2)
    async with connect(stack.urls.hub, open_timeout=10) as ws:
        assert (await subscribe(ws, ["admin"], token=ADMIN_TOKEN))["topics"] == ["admin"]
        await buy(stack, sku, 2)
        alert = await next_on(ws, "admin", lambda d: d.get("kind") == "alert" and d["sku"] == sku)
        assert alert["data"]["type"] == "SoldOut" and alert["data"]["available"] == 0
        assert alert["data"]["sku"] == sku and alert["data"]["kind"] == "alert"

    async def listed():
        r = await api.get("/admin/analytics/alerts", headers=admin_headers)
        return any(a["sku"] == sku and a["kind"] == "SoldOut" for a in r.json())
    await async_wait_for(listed, timeout_s=30, what="the sold-out alert in the analytics")


async def test_product_page_subscriptions_count_as_views_in_the_funnel(stack, api, db, admin_headers):
    from websockets.asyncio.client import connect

    from tests.integration.test_private_topics import subscribe

    sku = await make_product(db, api, admin_headers)

    async def views_today() -> int:
        return (await api.get("/admin/analytics/summary", headers=admin_headers)).json()["funnel"]["product_views"]
    before = await views_today()
    for _ in range(3):
        async with connect(stack.urls.hub, open_timeout=10) as ws:
            await subscribe(ws, [f"product:{sku}"])

    async def counted():
        return await views_today() >= before + 3
    await async_wait_for(counted, timeout_s=30, interval_s=0.3, what="three product views in today's funnel")


async def test_an_event_the_rules_cannot_read_is_skipped_and_counting_goes_on(stack, api, db, admin_headers, directory):
    """A malformed order event (here: no customer_id) once stopped the consumer for good: every retry
    re-read it from the pending list. It is now logged and acknowledged alone."""
    redis = create_redis(stack.urls.redis)
    try:
        await redis.xadd(stream_name("order"), {"id": 1, "event_id": "00000000-0000-4000-8000-000000000001",
                                                "key": "ORD-1", "type": "OrderPaid", "at": 1.0,
                                                "payload": '{"number": "ORD-1", "email": "x@example.com"}'})
    finally:
        await redis.aclose()
    sku = await make_product(db, api, admin_headers, price_minor=700)
    await buy(stack, sku, 1)

    async def counted():
        return await sku_figures(api, admin_headers, [sku]) == {sku: (1, 700)}
    await async_wait_for(counted, timeout_s=60, interval_s=0.3, what="the order after the malformed one")
    assert (await directory.call("analytics", 0, "ping"))["ready"] is True
