"""The notifier: order events on the Valkey stream → one notification per event id, in the mailbox
table and as an .eml file; redelivery, restarts and crashed consumers lose nothing and double nothing."""
from __future__ import annotations

import email
import json
import uuid
from email import policy
from pathlib import Path

import pytest

from actors.notifier import GROUP, STREAM, NotificationConsumer
from storage.cache import create_redis
from storage.mailbox import Mailbox
from tests.conftest import async_wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(stack):
    r = create_redis(stack.urls.redis)
    yield r
    await r.aclose()


def order_number() -> str:
    return f"ORD-{uuid.uuid4().int % 10**12}"


def entry(event_type: str, number: str, event_id: uuid.UUID | None = None, **extra) -> dict:
    payload = {"number": number, "email": f"{number.lower()}@example.com", "total_minor": 2599, "currency": "USD", **extra}
    return {"id": 0, "event_id": str(event_id or uuid.uuid4()), "key": number, "type": event_type,
            "payload": json.dumps(payload), "at": 0.0}


async def rows_for(db, number: str) -> list:
    return await db.fetch("select * from notifications where order_number = $1 order by id", number)


async def acked(redis, stream: str, group: str, entry_id: bytes) -> bool:
    groups = {g["name"]: g for g in await redis.xinfo_groups(stream)}
    last = groups[group.encode()]["last-delivered-id"]
    delivered = tuple(map(int, last.split(b"-"))) >= tuple(map(int, entry_id.split(b"-")))
    return delivered and not await redis.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)


async def test_the_same_event_delivered_twice_makes_one_notification_and_one_eml_file(stack, redis, db):
    number, event_id = order_number(), uuid.uuid4()
    first = await redis.xadd(STREAM, entry("OrderPaid", number, event_id))
    second = await redis.xadd(STREAM, entry("OrderPaid", number, event_id))
    await async_wait_for(lambda: acked(redis, STREAM, GROUP, second), what="both entries acknowledged")
    assert await acked(redis, STREAM, GROUP, first)

    [row] = await rows_for(db, number)
    assert (row["event_id"], row["kind"], row["to_email"], row["transport"]) == (
        event_id, "order_paid", f"{number.lower()}@example.com", "mailbox")
    assert row["sent_at"] is not None and "$25.99" in row["body"]

    mailbox = Path(stack.actors.mailbox_dir)
    files = list(mailbox.glob(f"*{event_id}*"))
    assert [f.name for f in files] == [f"{event_id}.eml"]
    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["To"] == f"{number.lower()}@example.com" and number in msg["Subject"]
    assert msg["X-Surge-Event-Id"] == str(event_id) and "$25.99" in msg.get_content()


async def test_events_that_notify_nobody_are_acknowledged_and_skipped(stack, redis, db):
    number = order_number()
    skipped = await redis.xadd(STREAM, entry("OrderFulfilling", number))
    malformed = await redis.xadd(STREAM, {**entry("OrderShipped", number), "payload": "{not json"})
    after = await redis.xadd(STREAM, entry("OrderShipped", number, carrier="UPS", tracking_number="1Z42"))
    await async_wait_for(lambda: acked(redis, STREAM, GROUP, after), what="entries acknowledged")
    assert await acked(redis, STREAM, GROUP, skipped) and await acked(redis, STREAM, GROUP, malformed)
    [row] = await rows_for(db, number)
    assert row["kind"] == "order_shipped" and "Tracking number: 1Z42" in row["body"]


async def test_the_notifier_resumes_after_a_restart_without_losing_events(stack, redis, db, directory):
    import ray

    number = order_number()
    before = await redis.xadd(STREAM, entry("OrderPlaced", number))
    await async_wait_for(lambda: acked(redis, STREAM, GROUP, before), what="the first event handled")
    ray.kill(directory.handle("notifier", 0), no_restart=False)
    # published while the notifier is down or coming back
    for event_type in ("OrderPaid", "OrderShipped", "OrderDelivered"):
        await redis.xadd(STREAM, entry(event_type, number, carrier="DHL", tracking_number="JD1"))

    async def all_four():
        rows = await rows_for(db, number)
        return rows if len(rows) == 4 else None

    rows = await async_wait_for(all_four, timeout_s=60, what="four notifications after the restart")
    assert [r["kind"] for r in rows] == ["order_placed", "order_paid", "order_shipped", "order_delivered"]
    pong = await async_wait_for(lambda: directory.call("notifier", 0, "ping"), what="notifier back")
    assert pong["ready"]


# --- the consumer's recovery paths, on a private stream -----------------------------------------
@pytest.fixture
async def private_stream(redis):
    stream = f"surge:test:notify:{uuid.uuid4().hex}"
    yield stream
    await redis.delete(stream)


async def test_a_consumer_that_crashed_mid_entry_handles_it_when_it_comes_back(redis, db, private_stream, tmp_path):
    number = order_number()
    crashed = NotificationConsumer(redis, Mailbox(db, tmp_path), stream=private_stream, group="g", consumer="c-1")
    await crashed.ensure_group()
    entry_id = await redis.xadd(private_stream, entry("OrderDelivered", number))
    # delivered to c-1, never acknowledged: the crash
    assert (await redis.xreadgroup("g", "c-1", {private_stream: ">"}, count=10))[0][1][0][0] == entry_id
    assert await rows_for(db, number) == []

    back = NotificationConsumer(redis, Mailbox(db, tmp_path), stream=private_stream, group="g", consumer="c-1")
    assert await back.read_new(block_ms=10) == 0  # new entries alone would never see it
    assert await back.drain_pending() == 1
    assert [r["kind"] for r in await rows_for(db, number)] == ["order_delivered"]
    assert await redis.xpending(private_stream, "g") == {"pending": 0, "min": None, "max": None, "consumers": []}
    assert len(list(tmp_path.glob("*.eml"))) == 1


async def test_entries_left_pending_by_a_dead_consumer_are_claimed_by_another(redis, db, private_stream, tmp_path):
    number = order_number()
    dead = NotificationConsumer(redis, Mailbox(db, tmp_path), stream=private_stream, group="g", consumer="dead")
    await dead.ensure_group()
    await redis.xadd(private_stream, entry("OrderCancelled", number))
    await redis.xreadgroup("g", "dead", {private_stream: ">"}, count=10)

    alive = NotificationConsumer(redis, Mailbox(db, tmp_path), stream=private_stream, group="g", consumer="alive",
                                 claim_idle_ms=0)
    assert await alive.claim_stale() == 1
    assert [r["kind"] for r in await rows_for(db, number)] == ["order_cancelled"]
    assert (await redis.xpending(private_stream, "g"))["pending"] == 0


async def test_a_recorded_but_unsent_notification_is_sent_on_redelivery(redis, db, private_stream, tmp_path):
    class FailingOnce:
        transport = "smtp"

        def __init__(self):
            self.sent, self.calls = [], 0

        async def send(self, message):
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("smtp down")
            self.sent.append(message)

    number, sender = order_number(), FailingOnce()
    consumer = NotificationConsumer(redis, Mailbox(db, tmp_path), sender, stream=private_stream, group="g", consumer="c")
    await consumer.ensure_group()
    await redis.xadd(private_stream, entry("OrderRefunded", number, refunded_minor=1000))
    with pytest.raises(ConnectionError):
        await consumer.read_new(block_ms=10)
    [row] = await rows_for(db, number)
    assert row["sent_at"] is None  # recorded, not sent, not acknowledged

    assert await consumer.drain_pending() == 1
    [row] = await rows_for(db, number)
    assert row["sent_at"] is not None and row["transport"] == "smtp"
    assert [m["Subject"] for m in sender.sent] == [row["subject"]]


# --- the admin route ------------------------------------------------------------------------------
async def test_admin_lists_notifications_newest_first_filtered_by_order_and_kind(stack, redis, api, admin_headers):
    number = order_number()
    await redis.xadd(STREAM, entry("OrderPlaced", number))
    last = await redis.xadd(STREAM, entry("OrderPaid", number))
    await async_wait_for(lambda: acked(redis, STREAM, GROUP, last), what="events handled")

    r = await api.get("/admin/notifications", params={"order_number": number}, headers=admin_headers)
    assert r.status_code == 200
    assert [n["kind"] for n in r.json()["items"]] == ["order_paid", "order_placed"]
    r = await api.get("/admin/notifications", params={"order_number": number, "kind": "order_placed"}, headers=admin_headers)
    assert [n["subject"] for n in r.json()["items"]] == [f"We received your order {number}"]
    assert (await api.get("/admin/notifications", params={"order_number": number})).status_code == 401
    assert (await api.get("/admin/notifications", params={"kind": "spam"}, headers=admin_headers)).status_code == 422
