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


class FakeTransport:
    def __init__(self):
        self.written: list[bytes] = []

    def write(self, data: bytes):
        self.written.append(data)


class FakeConnection(FakeSocket):
    """What the direct fan-out uses of a `websockets` connection: its protocol's state and
    extensions, its transport, and whether writing is paused (buffer above the write limit)."""

    def __init__(self, blocked: bool = False):
        super().__init__(blocked)
        from websockets.protocol import OPEN

        self.protocol = type("P", (), {"state": OPEN, "extensions": []})()
        self.transport = FakeTransport()
        self.paused = False
        self.send_in_progress = None

    def send_data(self):  # pragma: no cover - only with extensions
        raise AssertionError("no extensions: the pre-built frame is written as is")

    def received(self) -> list[dict]:
        """Frames written directly (unmasked server frames, short payloads) then by the sender task."""
        direct = [json.loads(w[2:]) for w in self.transport.written]
        return direct + self.sent


async def test_direct_fanout_writes_one_shared_frame_to_every_idle_socket_without_waking_their_tasks():
    hub = Hub(fanout="direct")
    conns = [FakeConnection() for _ in range(3)]
    clients = [hub.connect(c) for c in conns]
    for client in clients:
        await hub.subscribe(client, {"product:A"}, {})
    hub.publish("product:A", {"available": 5}, seq=1)
    # written during publish itself: no sender task ran, nothing queued
    assert all(c.transport.written for c in conns) and all(not cl.pending for cl in clients)
    frames = [c.transport.written[0] for c in conns]
    assert frames[0] is frames[1] is frames[2]  # encoded once for everyone
    assert frames[0][:2] == b"\x81" + bytes([len(frames[0]) - 2])  # one unmasked text frame
    assert json.loads(frames[0][2:]) == {"topic": "product:A", "seq": 1, "data": {"available": 5}}


async def test_direct_fanout_queues_and_coalesces_for_a_paused_socket_and_keeps_order_after():
    hub = Hub(fanout="direct")
    slow_ws, fast_ws = FakeConnection(blocked=True), FakeConnection()
    slow, fast = hub.connect(slow_ws), hub.connect(fast_ws)
    tasks = [asyncio.create_task(c.send_forever()) for c in (slow, fast)]
    await hub.subscribe(slow, {"product:A"}, {})
    await hub.subscribe(fast, {"product:A"}, {})
    hub.publish("product:A", {"available": 9}, seq=1)
    slow_ws.paused = True  # its buffer passed the write limit: the hub must not write to it now
    for v in range(2, 30):
        hub.publish("product:A", {"available": v}, seq=v)
        await settle()
    assert [m["seq"] for m in fast_ws.received()] == list(range(1, 30))
    assert [m["seq"] for m in slow_ws.received()] == [1]
    slow_ws.paused = False
    await settle()  # its sender task was inside send(), blocked like a full socket
    assert slow.sending
    hub.publish("product:A", {"available": 30}, seq=30)  # busy sender: queued behind, never overtaking
    slow_ws.gate.set()
    await settle()
    direct = lambda: [json.loads(w[2:])["seq"] for w in slow_ws.transport.written]  # noqa: E731
    # 2 was already being sent; 3..29 coalesced and were replaced by 30 (latest wins)
    assert direct() == [1] and [m["seq"] for m in slow_ws.sent] == [2, 30]
    hub.publish("product:A", {"available": 31}, seq=31)  # idle again: written directly
    assert direct() == [1, 31] and not slow.pending
    for t in tasks:
        t.cancel()


async def test_direct_fanout_still_drops_a_laggard_with_the_resync_code():
    hub = Hub(max_pending=3, fanout="direct")
    ws = FakeConnection(blocked=True)
    ws.paused = True
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


async def test_the_hub_remembers_sequence_numbers_only_for_topics_it_numbers_itself():
    hub = Hub()
    for i in range(1_000):  # every SKU, cart and order ever published brings its own seq
        hub.publish(f"product:SKU-{i}", {"available": i}, seq=i + 1)
        hub.publish(f"order:ORD-{i}", {"status": "paid"}, seq=2)
    hub.publish("admin", {"kind": "alert"}, seq=41)
    hub.publish("heartbeat", {})
    hub.publish("heartbeat", {})
    assert hub.seq == {"heartbeat": 2}
    assert hub.last_seq("admin") == 41 and hub.last_seq("heartbeat") == 2


class SocketTransport(FakeTransport):
    """A transport over a real socket pair, with or without a TLS context."""

    def __init__(self, sock, tls: bool):
        super().__init__()
        self.extra = {"socket": sock, "sslcontext": __import__("ssl").create_default_context() if tls else None}

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize("tls", [False, True])
async def test_raw_fanout_writes_to_the_descriptor_only_of_a_plain_socket_never_under_tls(tls):
    import socket

    here, peer = socket.socketpair()
    here.setblocking(False)
    try:
        hub = Hub(fanout="raw")
        ws = FakeConnection()
        ws.transport = SocketTransport(here, tls)
        client = hub.connect(ws)
        await hub.subscribe(client, {"product:A"}, {})
        hub.publish("product:A", {"available": 5}, seq=1)
        peer.setblocking(False)
        try:
            on_the_wire = peer.recv(4096)
        except BlockingIOError:
            on_the_wire = b""
        if tls:  # plaintext written under the TLS layer would corrupt the stream: it goes through the transport
            assert client.fd == -1 and on_the_wire == b""
            assert [json.loads(w[2:])["seq"] for w in ws.transport.written] == [1]
        else:
            assert client.fd == here.fileno() and not ws.transport.written
            assert json.loads(on_the_wire[2:]) == {"topic": "product:A", "seq": 1, "data": {"available": 5}}
    finally:
        here.close()
        peer.close()


async def watching(hub: Hub, n: int, topic: str = "product:A") -> tuple[list[FakeConnection], list]:
    """`n` fake connections, each a client of `hub` subscribed to `topic`."""
    conns = [FakeConnection() for _ in range(n)]
    clients = [hub.connect(c) for c in conns]
    for client in clients:
        await hub.subscribe(client, {topic}, {})
    return conns, clients


async def test_a_rolling_pass_hands_a_newer_level_to_the_rest_at_once_and_then_to_those_it_wrote():
    hub = Hub(fanout="direct", pass_slice=2, roll_above=2)
    conns, _ = await watching(hub, 6)
    hub.publish("product:A", {"available": 9}, seq=1)
    assert not any(c.transport.written for c in conns)  # more watchers than a slice: a task writes them
    await asyncio.sleep(0)  # the pass's first slice, then it yields to the loop
    first = [c for c in conns if c.transport.written]
    assert len(first) == 2
    hub.publish("product:A", {"available": 8}, seq=2)  # arrives mid-pass
    hub.publish("product:A", {"available": 7}, seq=3)  # and another: only the newest goes out
    await settle()
    assert "product:A" not in hub.rolling  # the pass ended once everyone had the newest
    for c in conns:
        seqs = [m["seq"] for m in c.received()]
        assert seqs == ([1, 3] if c in first else [3])


async def test_a_client_subscribing_during_a_rolling_pass_gets_the_newest_level_once():
    hub = Hub(fanout="direct", pass_slice=2, roll_above=2)
    conns, clients = await watching(hub, 5)
    hub.publish("product:A", {"available": 9}, seq=1)
    await asyncio.sleep(0)
    late_ws = FakeConnection()
    late = hub.connect(late_ws)
    task = asyncio.create_task(late.send_forever())
    await hub.subscribe(late, {"product:A"}, {})  # offered seq 1 as it joins
    gone = next(c for c, ws in zip(clients, conns) if not ws.transport.written)
    hub.disconnect(gone)  # a watcher the pass had not reached leaves
    await settle()
    assert [m["seq"] for m in late_ws.received()] == [1]
    assert not conns[clients.index(gone)].transport.written
    assert sum(1 for c in conns if c.transport.written) == 4
    task.cancel()


async def test_a_pass_slice_of_zero_writes_every_watcher_within_publish():
    hub = Hub(fanout="raw", pass_slice=0)
    conns, _ = await watching(hub, 600)
    hub.publish("product:A", {"available": 1}, seq=1)
    assert all(len(c.transport.written) == 1 for c in conns) and not hub.rolling


async def test_a_resuming_client_that_has_the_newest_level_is_not_sent_it_again_by_a_pass_under_way():
    hub = Hub(fanout="direct", pass_slice=2, roll_above=2)
    conns, _ = await watching(hub, 5)
    hub.publish("product:A", {"available": 9}, seq=7)
    await asyncio.sleep(0)  # the pass is under way
    back_ws = FakeConnection()
    back = hub.connect(back_ws)
    await hub.subscribe(back, {"product:A"}, {"product:A": 7})  # it saw seq 7 before reconnecting
    await settle()
    assert back_ws.received() == [] and not back.pending
    assert all([m["seq"] for m in c.received()] == [7] for c in conns)


async def test_a_topic_with_no_more_watchers_than_roll_above_is_written_within_publish():
    hub = Hub(fanout="direct", pass_slice=2, roll_above=4)
    conns, _ = await watching(hub, 4)
    hub.publish("product:A", {"available": 1}, seq=1)
    assert all(len(c.transport.written) == 1 for c in conns) and not hub.rolling
    await hub.subscribe(hub.connect(FakeConnection()), {"product:A"}, {})  # a fifth: now it rolls
    hub.publish("product:A", {"available": 0}, seq=2)
    assert "product:A" in hub.rolling
    await settle()
    assert all(len(c.transport.written) == 2 for c in conns) and not hub.rolling


async def test_a_rolling_pass_that_fails_is_logged_and_the_next_level_starts_afresh(caplog, monkeypatch):
    hub = Hub(fanout="direct", pass_slice=2, roll_above=2)
    conns, _ = await watching(hub, 4)
    real_pass = hub._pass
    monkeypatch.setattr(hub, "_pass", lambda *args: 1 / 0)
    hub.publish("product:A", {"available": 2}, seq=1)
    await settle()
    assert not hub.rolling and "rolling pass failed" in caplog.text
    monkeypatch.setattr(hub, "_pass", real_pass)
    hub.publish("product:A", {"available": 1}, seq=2)
    await settle()
    assert all([m["seq"] for m in c.received()] == [2] for c in conns)


async def test_a_rolling_pass_goes_round_so_whoever_was_written_longest_ago_is_next():
    hub = Hub(fanout="direct", pass_slice=2, roll_above=2)
    conns, _ = await watching(hub, 8)
    writes: list[tuple[int, int]] = []  # (connection, seq) in the order the hub wrote them
    for i, c in enumerate(conns):
        c.transport.write = lambda data, i=i: writes.append((i, json.loads(data[2:])["seq"]))
    hub.publish("product:A", {"available": 9}, seq=1)
    await asyncio.sleep(0)  # slice 1: seq 1
    await asyncio.sleep(0)  # slice 2: seq 1
    hub.publish("product:A", {"available": 8}, seq=2)
    for _ in range(3):  # slices 3 and 4 bring seq 2 to the rest, slice 5 to the first slice's two
        await asyncio.sleep(0)
    assert [seq for _, seq in writes] == [1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    hub.publish("product:A", {"available": 7}, seq=3)
    await settle()
    threes = [i for i, seq in writes if seq == 3]
    assert sorted(threes) == list(range(8)) and not hub.rolling
    just_written = [i for i, _ in writes[8:10]]  # the last two given seq 2 ...
    assert threes[-2:] == just_written  # ... wait longest for seq 3; those holding 2 longer go first


async def test_a_pass_that_goes_on_forgets_the_watchers_who_left():
    hub = Hub(fanout="direct", pass_slice=2, roll_above=2)
    await watching(hub, 6)
    hub.publish("product:A", {"available": 9}, seq=1)
    await asyncio.sleep(0)
    rolling = hub.rolling["product:A"]
    gone = list(rolling.handed)  # the first slice's two leave, while new levels keep the pass going
    assert len(gone) == 2
    for client in gone:
        hub.disconnect(client)
    for seq in range(2, 6):  # a new level every slice: the pass never ends, and goes round twice
        hub.publish("product:A", {"available": 9 - seq}, seq=seq)
        await asyncio.sleep(0)
    assert hub.rolling.get("product:A") is rolling  # still going round
    assert not set(gone) & (set(rolling.handed) | set(rolling.ring))
    await settle()
    assert not hub.rolling
