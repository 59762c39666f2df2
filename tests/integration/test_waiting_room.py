"""Overload on the hot path: 429 + Retry-After in general, a FIFO waiting room for flash-sale SKUs,
and every waiting shopper told the moment the SKU sells out. The in-flight limit is turned down to
zero through Serve's user_config (a runtime knob) and restored afterwards."""
import uuid

import httpx
import pytest

from storage.cache import create_redis
from storage.waiting_room import WaitingRoom
from tests.conftest import async_wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def overloaded(stack):
    stack.reconfigure({"reserve_max_in_flight": 0})
    yield
    stack.reconfigure({})
    async with httpx.AsyncClient(base_url=stack.urls.api) as api:
        async def normal():
            r = await api.post("/inventory/reservations", json={"owner": "cart:probe", "lines": [{"sku": "SAMPLE-1", "quantity": 1}], "ttl_s": 1})
            return r.status_code == 201
        await async_wait_for(normal, timeout_s=60, interval_s=0.5, what="the limit to be restored")


async def flash_product(db, api, admin_headers, stock: int) -> str:
    sku = f"FLASH-{uuid.uuid4().hex[:8]}"
    pid = await db.fetchval("insert into products (slug, name, flash_sale) values ($1, $1, true) returning id", sku.lower())
    await db.execute("insert into variants (sku, product_id, price_minor) values ($1, $2, 1000)", sku, pid)
    assert (await api.put(f"/admin/inventory/{sku}", json={"on_hand": stock}, headers=admin_headers)).status_code == 200
    return sku


def buy(sku: str) -> dict:
    return {"owner": f"cart:{uuid.uuid4().hex[:6]}", "lines": [{"sku": sku, "quantity": 1}]}


async def test_overload_queues_flash_shoppers_in_order_admits_fifo_and_tells_everyone_when_sold_out(
        stack, overloaded, api, db, admin_headers):
    sku = await flash_product(db, api, admin_headers, stock=2)

    async def queued():
        r = await api.post("/inventory/reservations", json=buy(sku))
        return r.status_code == 202 and r
    first = (await async_wait_for(queued, timeout_s=60, interval_s=0.5, what="a waiting-room ticket")).json()
    second = (await api.post("/inventory/reservations", json=buy(sku))).json()
    third = (await api.post("/inventory/reservations", json=buy(sku))).json()
    assert [t["status"] for t in (first, second, third)] == ["waiting"] * 3
    assert second["position"] == first["position"] + 1 and third["position"] == second["position"] + 1

    # no free capacity: polling admits nobody
    poll = (await api.get(f"/waiting-room/{second['queue_token']}")).json()
    assert poll == {"status": "waiting", "position": second["position"], "sku": sku}

    # capacity for every ticket up to `second` (FIFO: never `third` before `second`)
    room = WaitingRoom(create_redis(stack.urls.redis), secret="unused-for-admission")
    await room.admit(sku, first["position"] + 2)
    assert (await api.get(f"/waiting-room/{second['queue_token']}")).json()["status"] == "admitted"
    assert (await api.get(f"/waiting-room/{third['queue_token']}")).json() == {"status": "waiting", "position": 0, "sku": sku}

    # an admitted ticket is let through despite the overload, once
    r = await api.post("/inventory/reservations", json=buy(sku), headers={"X-Queue-Token": second["queue_token"]})
    assert r.status_code == 201, r.text
    replay = await api.post("/inventory/reservations", json=buy(sku), headers={"X-Queue-Token": second["queue_token"]})
    assert replay.status_code == 202 and replay.json()["queue_token"] != second["queue_token"], replay.text
    # the next in line takes the last unit
    await room.admit(sku, 1)
    r = await api.post("/inventory/reservations", json=buy(sku), headers={"X-Queue-Token": third["queue_token"]})
    assert r.status_code == 201, r.text
    # the moment it sold out, everyone still waiting is told so
    assert (await api.get(f"/waiting-room/{replay.json()['queue_token']}")).json()["status"] == "sold_out"
    # a forged token is not admission
    forged = third["queue_token"].rsplit(".", 1)[0] + ".0000"
    assert (await api.get(f"/waiting-room/{forged}")).status_code == 404


async def test_overload_on_an_ordinary_sku_is_a_429_with_retry_after(stack, overloaded, api):
    async def shed():
        r = await api.post("/inventory/reservations", json=buy("SAMPLE-1"))
        return r.status_code == 429 and r
    r = await async_wait_for(shed, timeout_s=60, interval_s=0.5, what="a 429")
    assert r.headers["retry-after"] == "1" and r.json()["code"] == "overloaded"
