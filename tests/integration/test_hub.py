"""The realtime hub process started by the stack: health before upgrade, subscribe, heartbeat ticks;
the hub's fan-out on real loopback sockets whose buffers fill (no stack needed); closed sockets
freed from a frozen heap, and the hub's metrics; hub processes sharing one port."""
import asyncio
import gc
import json
import socket
import time
import uuid

import httpx
import pytest
import uvloop
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.server import ServerProtocol

from cluster.embedded import PortInUse, ensure_port_free
from cluster.local import LocalStack
from realtime.heap import HubMetrics, freeze_tick
from realtime.hub import RESYNC_CODE, Hub
from realtime.server import handler, hub_server
from tests.conftest import async_wait_for, free_port

pytestmark = pytest.mark.integration


async def test_hub_answers_health_checks_before_the_upgrade(stack):
    url = stack.urls.hub.replace("ws://", "http://") + "/healthz"
    async with httpx.AsyncClient() as client:
        r = await client.get(url)
    assert r.status_code == 200 and r.text == "ok\n"


async def test_a_subscriber_receives_heartbeats_with_increasing_sequence_numbers(stack):
    async with connect(stack.urls.hub, open_timeout=10) as ws:
        await ws.send(json.dumps({"op": "subscribe", "topics": ["heartbeat", "admin"]}))
        ack = json.loads(await ws.recv())
        assert ack == {"op": "subscribed", "topics": ["heartbeat"], "refused": ["admin"]}  # admin is private
        seqs = []
        while len(seqs) < 2:
            msg = json.loads(await ws.recv())
            assert msg["topic"] == "heartbeat"
            seqs.append(msg["seq"])
        assert seqs[1] == seqs[0] + 1


async def test_a_malformed_frame_gets_an_error_not_a_dropped_connection(stack):
    async with connect(stack.urls.hub, open_timeout=10) as ws:
        await ws.send("not json")
        assert json.loads(await ws.recv())["op"] == "error"
        await ws.send(json.dumps({"op": "subscribe", "topics": ["heartbeat"]}))
        assert json.loads(await ws.recv())["op"] == "subscribed"


async def test_a_page_from_another_origin_cannot_open_a_socket(stack):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        async with connect(stack.urls.hub, open_timeout=10, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with connect(stack.urls.hub, open_timeout=10, origin=stack.urls.api) as ws:  # the store's own pages
        await ws.send(json.dumps({"op": "subscribe", "topics": ["heartbeat"]}))
        assert json.loads(await ws.recv())["op"] == "subscribed"


async def next_on(ws, topic: str) -> dict:
    msg = json.loads(await ws.recv())
    while msg.get("topic") != topic:
        msg = json.loads(await ws.recv())
    return msg


async def a_stalled_reader_beside_a_reading_one(fanout: str) -> dict:
    """A hub of `fanout` on loopback with two real sockets on one product: one reads every frame, the
    other reads its ack and then nothing, with a tiny receive buffer, so its kernel buffers really fill.
    Frames are ~32 KB: about 90 fill them here. Returns what each side saw."""
    hub = Hub(fanout=fanout, max_pending=8)
    pad = "x" * 32_000
    async with serve(handler(hub), "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.connect(("127.0.0.1", server.sockets[0].getsockname()[1]))
        sock.setblocking(False)
        async with connect(url, sock=sock, max_queue=1, compression=None) as stalled, \
                connect(url, compression=None) as reader:
            for ws in (stalled, reader):
                await ws.send(json.dumps({"op": "subscribe", "topics": ["product:A", "heartbeat"]}))
                assert json.loads(await ws.recv())["op"] == "subscribed"
            port = stalled.local_address[1]
            slow = next(c for c in hub.subscribers["product:A"] if c.ws.remote_address[1] == port)
            seen, queued_at, seq = [], None, 0
            async with asyncio.timeout(60):
                # a level at a time, each read by the reader before the next: it is never held back
                while seq < 1_000 and (queued_at is None or seq < queued_at + 30):
                    seq += 1
                    hub.publish("product:A", {"available": seq, "pad": pad}, seq=seq)
                    seen.append((await next_on(reader, "product:A"))["seq"])
                    if queued_at is None and (slow.pending or slow.sending):
                        queued_at = seq  # the stalled socket's kernel buffers are full: the hub had to queue
                outcome = {"fd": slow.fd, "reader_seqs": seen, "last": seq, "queued_at": queued_at,
                           "slow_pending": len(slow.pending),
                           "slow_buffered": slow.ws.transport.get_write_buffer_size()}
                # a queued topic (not coalesced) past max_pending: the stalled client must resync
                for _ in range(hub.max_pending + 2):
                    hub.publish("heartbeat", {})
                    await next_on(reader, "heartbeat")
                outcome["dropped"] = slow.dropped
                outcome["still_subscribed"] = any(slow in hub.subscribers.get(t, ()) for t in ("product:A", "heartbeat"))
                hub.publish("product:A", {"available": seq + 1}, seq=seq + 1)
                outcome["reader_after"] = (await next_on(reader, "product:A"))["seq"]
                # the stalled reader wakes up: whole, ordered frames, then the resync close
                slow_seqs = []
                try:
                    while True:
                        msg = json.loads(await stalled.recv())
                        if msg.get("topic") == "product:A":
                            slow_seqs.append(msg["seq"])
                except ConnectionClosed as closed:
                    outcome["slow_close_code"] = closed.rcvd.code if closed.rcvd else None
                outcome["slow_seqs"] = slow_seqs
    return outcome


def run_on(loop: str, coro_fn, *args):
    return (uvloop.run if loop == "uvloop" else asyncio.run)(coro_fn(*args))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("fanout", ["raw", "direct", "queued"])
async def test_a_reader_whose_socket_buffers_are_full_is_coalesced_then_closed_with_resync_and_never_delays_another(
        fanout, loop):
    # its own event loop in a thread: the hub runs on uvloop in production, the test session on asyncio's
    out = await asyncio.to_thread(run_on, loop, a_stalled_reader_beside_a_reading_one, fanout)
    assert (out["fd"] >= 0) == (fanout == "raw")  # the raw pass really wrote to this socket's descriptor
    assert out["queued_at"] is not None, "the stalled socket's buffers never filled: the test proves nothing"
    assert out["reader_seqs"] == list(range(1, out["last"] + 1))  # every level, in order, none held back
    assert out["slow_pending"] <= 1  # 30 levels behind, one (the newest) waiting
    # what the hub holds for it stays near the write limit (a partial frame and one more), never MBs
    assert out["slow_buffered"] <= 2 ** 15 + 2 * 33_000
    assert out["dropped"] and not out["still_subscribed"]
    assert out["reader_after"] == out["last"] + 1
    assert out["slow_close_code"] == RESYNC_CODE
    seqs = out["slow_seqs"]
    assert seqs and seqs == sorted(set(seqs)) and seqs[-1] < out["queued_at"] + 30  # whole, ordered, behind


async def a_rolling_pass_over_real_sockets(levels: int) -> dict:
    """A raw hub whose passes roll 3 sockets a slice, 8 real subscribers, and a new level published
    every turn of the event loop (faster than a pass): what each subscriber received, in order."""
    hub = Hub(fanout="raw", pass_slice=3, roll_above=3)
    async with serve(handler(hub), "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        sockets = [await connect(url, compression=None) for _ in range(8)]
        try:
            for ws in sockets:
                await ws.send(json.dumps({"op": "subscribe", "topics": ["product:A"]}))
                assert json.loads(await ws.recv())["op"] == "subscribed"
            rolled = 0
            for seq in range(1, levels + 1):
                hub.publish("product:A", {"available": seq}, seq=seq)
                rolled += "product:A" in hub.rolling
                await asyncio.sleep(0)
            received = []
            async with asyncio.timeout(20):
                for ws in sockets:
                    seqs = [(await next_on(ws, "product:A"))["seq"]]
                    while seqs[-1] < levels:
                        seqs.append((await next_on(ws, "product:A"))["seq"])
                    received.append(seqs)
            fds = [c.fd for c in hub.subscribers["product:A"]]
        finally:
            for ws in sockets:
                await ws.close()
    return {"received": received, "rolled": rolled, "fds": fds}


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_a_rolling_pass_brings_every_socket_the_newest_level_in_order_skipping_stale_ones(loop):
    out = await asyncio.to_thread(run_on, loop, a_rolling_pass_over_real_sockets, 60)
    assert all(fd >= 0 for fd in out["fds"])  # the raw pass wrote to the descriptors
    assert out["rolled"] >= 50  # the levels came while a pass was under way
    for seqs in out["received"]:
        assert seqs == sorted(set(seqs)) and seqs[-1] == 60  # in order, never twice, ending at the newest
    # a level arriving mid-pass replaced the one the rest were about to get: every socket skipped some
    assert all(len(seqs) < 60 for seqs in out["received"])


def server_protocols() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is ServerProtocol)


async def test_closed_sockets_are_freed_at_once_even_from_a_frozen_heap_and_the_metrics_show_it():
    """The hub freezes what survives the young collections (realtime/heap.py); a closed connection
    must then be freed by reference counting alone, or it would stay frozen. With websockets' own
    connection class its protocol stayed behind, in a cycle with its parser (HubConnection)."""
    hub = Hub()
    metrics = HubMetrics(lambda: hub.connected)
    gc.collect()
    gc.disable()  # from here nothing is freed but by reference counting
    try:
        async with hub_server(hub, "127.0.0.1", 0, metrics=metrics) as server:
            port = server.sockets[0].getsockname()[1]
            sockets = [await connect(f"ws://127.0.0.1:{port}", compression=None) for _ in range(20)]
            for ws in sockets:
                await ws.send(json.dumps({"op": "subscribe", "topics": ["product:A"]}))
                assert json.loads(await ws.recv())["op"] == "subscribed"
            assert server_protocols() == 20
            frozen = gc.get_freeze_count()
            freeze_tick()
            assert gc.get_freeze_count() - frozen >= 20 * 50  # every connection's objects, out of the GC's scans
            assert server_protocols() == 0
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            assert "surge_hub_clients 20.0" in text
            assert 'surge_hub_gc_pause_seconds_count{generation="1"} 1.0' in text  # freeze_tick's young collection
            shown = next(line for line in text.splitlines() if line.startswith("surge_hub_gc_frozen_objects "))
            assert float(shown.split()[1]) >= frozen + 20 * 50
            for ws in sockets:
                await ws.close()

            async def all_closed() -> bool:
                return hub.connected == 0
            await async_wait_for(all_closed, timeout_s=10, what="the hub to see every socket closed")
            gc.unfreeze()  # whatever of them is still alive is back where the scans see it

            async def freed() -> bool:
                return server_protocols() == 0
            await async_wait_for(freed, timeout_s=10, what="the closed connections' protocols to be freed")
    finally:
        gc.unfreeze()
        gc.enable()
        metrics.close()


async def test_hub_processes_sharing_the_port_split_the_sockets_and_each_delivers_every_change(stack, api, admin_headers,
                                                                                              server_dir):
    """SURGE_HUB_PROCESSES=2: two hub processes on one port (SO_REUSEPORT), as `surge up` starts them;
    each reads the streams itself. Public topics only: these hubs have this test's own secrets."""
    port = free_port()
    twin = LocalStack(stack.surge.model_copy(update={"hub_port": port, "hub_processes": 2, "data_dir": server_dir}),
                      stack.storage, stack.serve, stack.actors, say=lambda m: None)
    url = twin.start_hubs(stack.urls.redis, stack.urls.database)
    try:
        async def up() -> bool:
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(url.replace("ws://", "http://") + "/healthz")).status_code == 200
            except httpx.HTTPError:
                return False
        await async_wait_for(up, timeout_s=30, what="the hub processes")
        with pytest.raises(PortInUse):  # what `surge up` checks first: nobody joins a running hub's port by accident
            ensure_port_free("127.0.0.1", port, "SURGE_HUB_PORT")
        sku = f"HP-{uuid.uuid4().hex[:10]}"
        assert (await api.put(f"/admin/inventory/{sku}", json={"on_hand": 5}, headers=admin_headers)).status_code == 200
        sockets = [await connect(url, open_timeout=10) for _ in range(32)]
        try:
            for ws in sockets:
                await ws.send(json.dumps({"op": "subscribe", "topics": ["heartbeat", f"product:{sku}"]}))
            await asyncio.sleep(0)
            connected_at = time.time()

            async def clients_seen(ws) -> int:  # its own process's count, in a heartbeat sent after all connected
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("topic") == "heartbeat" and msg["data"]["time"] > connected_at + 0.2:
                        return msg["data"]["clients"]
            async with asyncio.timeout(20):
                counts = await asyncio.gather(*(clients_seen(ws) for ws in sockets))
            split = sorted(set(counts))
            assert max(counts) < len(sockets), counts  # both processes hold some
            assert (all(counts.count(c) == c for c in split) if len(split) == 2
                    else counts == [len(sockets) // 2] * len(sockets)), counts

            r = await api.post("/inventory/reservations", json={"owner": "cart:hp", "lines": [{"sku": sku, "quantity": 1}]})
            assert r.status_code == 201, r.text

            async def level(ws) -> int:
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("topic") == f"product:{sku}" and msg["data"]["available"] == 4:
                        return 4
            async with asyncio.timeout(20):
                assert await asyncio.gather(*(level(ws) for ws in sockets)) == [4] * len(sockets)
        finally:
            for ws in sockets:
                await ws.close()
    finally:
        hubs = list(twin._hubs)
        twin.stop_hubs()
    assert len(hubs) == 2 and all(h.returncode is not None for h in hubs)
