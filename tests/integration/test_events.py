"""Outbox → EventRelay → Valkey Streams → hub: committed stock changes reach shoppers live."""
import asyncio
import json
import os
import signal
import uuid
from datetime import timedelta

import pytest
from websockets.asyncio.client import connect

from storage.cache import create_redis
from storage.outbox import stream_name
from tests.conftest import async_wait_for

pytestmark = pytest.mark.integration


async def make_sku(api, admin_headers, on_hand: int) -> str:
    sku = f"EV-{uuid.uuid4().hex[:10]}"
    assert (await api.put(f"/admin/inventory/{sku}", json={"on_hand": on_hand}, headers=admin_headers)).status_code == 200
    return sku


async def stream_entries_all(redis_url: str, topic: str) -> list[dict]:
    redis = create_redis(redis_url)
    try:
        entries = await redis.xrange(stream_name(topic), "-", "+")
    finally:
        await redis.aclose()
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def stream_entries(redis_url: str, key: str, topic: str = "inventory") -> list[dict]:
    return [e for e in await stream_entries_all(redis_url, topic) if e["key"] == key]


async def test_committed_events_reach_the_stream_in_commit_order_per_key(stack, api, admin_headers, db):
    sku = await make_sku(api, admin_headers, 10)
    for i in range(5):
        assert (await api.post("/inventory/reservations", json={"owner": "cart:ev", "lines": [{"sku": sku, "quantity": 1}]})).status_code == 201

    async def relayed():
        pending = await db.fetchval("select count(*) from outbox where key = $1 and published_at is null", sku)
        entries = await stream_entries(stack.urls.redis, sku)
        return pending == 0 and len(entries) >= 6 and entries
    entries = await async_wait_for(relayed, timeout_s=30, interval_s=0.2, what="the SKU's events in the stream")
    ids = [int(e["id"]) for e in entries]
    assert ids == sorted(ids)  # outbox (commit) order per key
    versions = [json.loads(e["payload"])["version"] for e in entries if e["type"] == "StockLevelChanged"]
    assert versions == sorted(versions) and json.loads(entries[-1]["payload"])["available"] == 5
    assert len({e["event_id"] for e in entries}) == len(entries)


async def test_reservation_events_travel_apart_from_the_stock_stream_its_consumers_read(stack, api, admin_headers, db):
    """The stock consumers (hub, cache invalidation, analytics) read `inventory`; the per-shopper
    reservation events are committed and relayed too, but on `reservation`, so they never wake them."""
    sku = await make_sku(api, admin_headers, 5)
    rids = []
    for _ in range(3):
        r = await api.post("/inventory/reservations", json={"owner": "cart:apart", "lines": [{"sku": sku, "quantity": 1}]})
        assert r.status_code == 201
        rids.append(r.json()["reservation_id"])
    assert (await api.delete(f"/inventory/reservations/{rids[0]}")).status_code == 204

    async def relayed():
        pending = await db.fetchval("select count(*) from outbox where key = any($1::text[]) and published_at is null",
                                    [sku, *rids])
        held = [e for rid in rids for e in await stream_entries(stack.urls.redis, rid, "reservation")]
        return pending == 0 and len(held) == 4 and held
    held = await async_wait_for(relayed, timeout_s=30, interval_s=0.2, what="the reservation events in their stream")
    assert sorted(e["type"] for e in held) == ["StockReleased", "StockReserved", "StockReserved", "StockReserved"]
    stock = await stream_entries(stack.urls.redis, sku)
    assert stock and {e["type"] for e in stock} <= {"StockLevelChanged", "SoldOut", "BackInStock", "LowStock", "StockAdjusted"}
    everything = [e["key"] for e in await stream_entries_all(stack.urls.redis, "inventory")]
    assert not set(rids) & set(everything)


async def test_a_relay_killed_mid_stream_loses_no_committed_event(stack, api, admin_headers, db, directory):
    sku = await make_sku(api, admin_headers, 100)
    pid = (await directory.call("relay", 0, "ping"))["pid"]
    for i in range(20):
        if i == 10:
            os.kill(pid, signal.SIGKILL)
        assert (await api.post("/inventory/reservations", json={"owner": "cart:k", "lines": [{"sku": sku, "quantity": 1}]})).status_code == 201
    expected = {str(r["event_id"]) for r in await db.fetch("select event_id from outbox where key = $1", sku)}

    async def all_relayed():
        got = {e["event_id"] for e in await stream_entries(stack.urls.redis, sku)}
        return expected <= got
    await async_wait_for(all_relayed, timeout_s=60, interval_s=0.5, what="every committed event after the relay restarted")
    assert (await directory.call("relay", 0, "ping"))["pid"] != pid


async def test_the_relay_deletes_relayed_rows_past_the_retention_and_nothing_else(db, directory):
    key = f"prune-{uuid.uuid4().hex[:8]}"
    insert = ("insert into outbox (event_id, topic, key, type, payload, created_at, published_at) "
              "values ($1, 'prunetest', $2, $3, '{}'::jsonb, now() - interval '8 days', now() - $4::interval)")
    await db.execute(insert, uuid.uuid4(), key, "old", timedelta(days=8))
    await db.execute(insert, uuid.uuid4(), key, "recent", timedelta(hours=1))
    await db.execute(insert.replace("now() - $4::interval", "null"), uuid.uuid4(), key, "unrelayed")

    async def old_gone():
        return await db.fetchval("select count(*) from outbox where key = $1 and type = 'old'", key) == 0
    await async_wait_for(old_gone, timeout_s=30, what="the relay to prune the row relayed 8 days ago")
    left = {r["type"]: r["published_at"] for r in await db.fetch("select type, published_at from outbox where key = $1", key)}
    assert set(left) == {"recent", "unrelayed"}  # within the retention, and never-relayed, rows stay
    assert (await directory.call("relay", 0, "ping"))["pruned"] >= 1


async def test_a_shopper_watching_a_product_sees_its_stock_change_live(stack, api, admin_headers):
    sku = await make_sku(api, admin_headers, 3)
    async with connect(stack.urls.hub, open_timeout=10) as ws:
        await ws.send(json.dumps({"op": "subscribe", "topics": [f"product:{sku}"]}))
        assert json.loads(await ws.recv())["topics"] == [f"product:{sku}"]
        for _ in range(3):
            assert (await api.post("/inventory/reservations", json={"owner": "cart:live", "lines": [{"sku": sku, "quantity": 1}]})).status_code == 201
        seen = []
        async with asyncio.timeout(30):  # a missing update fails the test instead of hanging it
            while not seen or seen[-1]["data"]["available"] > 0:
                msg = json.loads(await ws.recv())
                assert msg["topic"] == f"product:{sku}"
                seen.append(msg)
        assert seen[-1]["data"] == {"sku": sku, "available": 0, "on_hand": 3, "sold_out": True}
        assert [m["seq"] for m in seen] == sorted(m["seq"] for m in seen)


async def test_a_subscriber_gets_the_current_level_at_once_and_a_reconnect_resumes_after_its_last_seq(
        stack, api, admin_headers):
    sku = await make_sku(api, admin_headers, 4)
    assert (await api.post("/inventory/reservations", json={"owner": "cart:r", "lines": [{"sku": sku, "quantity": 1}]})).status_code == 201
    async with connect(stack.urls.hub, open_timeout=10) as ws:
        await ws.send(json.dumps({"op": "subscribe", "topics": [f"product:{sku}"]}))
        assert json.loads(await ws.recv())["op"] == "subscribed"
        async with asyncio.timeout(30):
            snap = json.loads(await ws.recv())
            while snap["data"]["available"] != 3:  # the snapshot, or the relayed change if it won
                snap = json.loads(await ws.recv())
    last_seq = snap["seq"]
    # offline: two more units go
    for _ in range(2):
        assert (await api.post("/inventory/reservations", json={"owner": "cart:r", "lines": [{"sku": sku, "quantity": 1}]})).status_code == 201
    async with connect(stack.urls.hub, open_timeout=10) as ws:
        await ws.send(json.dumps({"op": "subscribe", "topics": [f"product:{sku}"], "since": {f"product:{sku}": last_seq}}))
        assert json.loads(await ws.recv())["op"] == "subscribed"
        async with asyncio.timeout(30):
            msg = json.loads(await ws.recv())
            while msg["data"]["available"] != 1:
                msg = json.loads(await ws.recv())
        assert msg["seq"] > last_seq


async def test_a_client_that_never_reads_does_not_delay_one_that_does(stack, api, admin_headers):
    sku = await make_sku(api, admin_headers, 200)
    topic = f"product:{sku}"
    async with connect(stack.urls.hub, open_timeout=10, max_queue=1) as slow, connect(stack.urls.hub, open_timeout=10) as fast:
        for ws in (slow, fast):
            await ws.send(json.dumps({"op": "subscribe", "topics": [topic]}))
        assert json.loads(await fast.recv())["op"] == "subscribed"
        await asyncio.gather(*(api.post("/inventory/reservations", json={"owner": "cart:s", "lines": [{"sku": sku, "quantity": 1}]})
                               for _ in range(150)))
        async with asyncio.timeout(30):
            msg = json.loads(await fast.recv())
            while msg.get("data", {}).get("available") != 50:
                msg = json.loads(await fast.recv())
