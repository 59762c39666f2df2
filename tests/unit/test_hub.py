"""The hub's fan-out rules, with a fake socket (no servers)."""
import asyncio
import json

import pytest

from realtime.hub import RESYNC_CODE, Hub

pytestmark = pytest.mark.unit


class FakeSocket:
    def __init__(self, blocked: bool = False):
        self.sent: list[dict] = []
        self.closed: tuple[int, str] | None = None
        self.gate = asyncio.Event()
        if not blocked:
            self.gate.set()

    async def send(self, frame: str):
        await self.gate.wait()  # a slow reader: its TCP buffer is full
        self.sent.append(json.loads(frame))

    async def close(self, code: int, reason: str):
        self.closed = (code, reason)


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_slow_client_gets_only_the_latest_stock_and_never_delays_a_fast_one():
    hub = Hub()
    slow_ws, fast_ws = FakeSocket(blocked=True), FakeSocket()
    slow, fast = hub.connect(slow_ws), hub.connect(fast_ws)
    tasks = [asyncio.create_task(c.send_forever()) for c in (slow, fast)]
    await hub.subscribe(slow, {"product:A"}, {})
    await hub.subscribe(fast, {"product:A"}, {})
    hub.publish("product:A", {"available": 5}, seq=1)
    await settle()  # the slow sender is now stuck inside send(version 1)
    for v in range(2, 50):
        hub.publish("product:A", {"available": 5 - v % 5}, seq=v)
        await settle()
    assert [m["seq"] for m in fast_ws.sent] == list(range(1, 50))
    assert len(slow.pending) == 1  # 48 ticks coalesced into the newest
    slow_ws.gate.set()
    await settle()
    assert [m["seq"] for m in slow_ws.sent] == [1, 49]
    for t in tasks:
        t.cancel()


async def test_a_client_that_falls_too_far_behind_on_queued_topics_is_told_to_resync():
    hub = Hub(max_pending=3)
    ws = FakeSocket(blocked=True)
    client = hub.connect(ws)
    task = asyncio.create_task(client.send_forever())
    await hub.subscribe(client, {"heartbeat"}, {})
    for _ in range(6):
        hub.publish("heartbeat", {})
        await settle()
    ws.gate.set()
    await settle()
    assert ws.closed == (RESYNC_CODE, "resync: client too slow")
    assert client not in hub.subscribers.get("heartbeat", set())
    task.cancel()


async def test_resume_sends_the_latest_level_only_when_it_is_newer_than_what_the_client_saw():
    async def snapshot(topic):
        return 7, {"available": 3}

    hub = Hub(snapshot=snapshot)
    fresh, current, behind = (hub.connect(FakeSocket()) for _ in range(3))
    await hub.subscribe(fresh, {"product:A"}, {})
    await hub.subscribe(current, {"product:A"}, {"product:A": 7})
    hub.publish("product:A", {"available": 2}, seq=6)  # a late, older event never goes backwards
    await hub.subscribe(behind, {"product:A"}, {"product:A": 5})
    assert [json.loads(f)["seq"] for f in fresh.pending.values()] == [7]
    assert current.pending == {}
    assert [json.loads(f)["seq"] for f in behind.pending.values()] == [7]


async def test_a_private_state_topic_keeps_its_latest_frame_only_while_watched():
    hub = Hub()
    hub.publish("order:ORD-1", {"status": "paid"}, seq=2)
    assert "order:ORD-1" not in hub.latest  # nobody watching: nothing kept
    ws = FakeSocket()
    client = hub.connect(ws)
    task = asyncio.create_task(client.send_forever())
    await hub.subscribe(client, {"order:ORD-1"}, {})
    hub.publish("order:ORD-1", {"status": "fulfilling"}, seq=3)
    hub.publish("order:ORD-1", {"status": "paid"}, seq=2)  # a late, older state: never shown
    await settle()
    assert [m["data"]["status"] for m in ws.sent] == ["fulfilling"]
    hub.disconnect(client)
    assert "order:ORD-1" not in hub.latest
    task.cancel()


async def test_a_feed_topic_replays_what_a_reconnecting_client_missed_under_its_label():
    hub = Hub(replay_len=4)
    for seq in (10, 11, 12):
        hub.publish("user:u1", {"n": seq}, seq=seq, label="user")
    ws = FakeSocket()
    client = hub.connect(ws)
    task = asyncio.create_task(client.send_forever())
    await hub.subscribe(client, {"user:u1"}, {"user": 10}, labels={"user:u1": "user"})
    await settle()
    assert [(m["topic"], m["seq"]) for m in ws.sent] == [("user", 11), ("user", 12)]
    task.cancel()


async def test_a_feed_topic_asks_for_a_resync_when_the_missed_frames_are_gone():
    hub = Hub(replay_len=2)
    for seq in (10, 11, 12, 13):
        hub.publish("admin", {"n": seq}, seq=seq)
    ws = FakeSocket()
    client = hub.connect(ws)
    task = asyncio.create_task(client.send_forever())
    await hub.subscribe(client, {"admin"}, {"admin": 10})
    await settle()
    assert ws.sent == [{"op": "resync", "topic": "admin"}]
    task.cancel()
