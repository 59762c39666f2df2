"""Topic fan-out for the realtime hub, following the `websockets` broadcasting guide.

- `publish` never awaits a client. A frame is encoded once per topic update (JSON, then the
  websocket frame's bytes: server frames are unmasked, so every socket gets the same bytes). With
  `fanout="raw"` (the default) one pass writes those bytes with one non-blocking `write()` to each
  idle socket's descriptor whose transport holds nothing, with no per-client task wakeup and none
  of the transport's per-call bookkeeping; a client that is not idle (bytes buffered in its
  transport, a full kernel buffer, its sender busy, or frames pending) gets the frame through its
  own bounded outbox and sender task instead, so order, coalescing and the resync rule below still
  hold and a slow client delays nobody else. `fanout="direct"` is the same pass through each
  transport's `write()` (as `websockets.broadcast()` does); `fanout="queued"` sends every frame
  through the outbox and sender task. Both older paths are kept for comparison in
  `loadtests/bench_realtime.py --hub-impl`.
- Stock ticks coalesce: a client holds at most one unsent frame per coalescing topic (the newest),
  so a slow reader of product pages skips stale levels instead of piling them up.
- Rolling passes: a coalescing topic with more than `roll_above` watchers (a hot product in a flash
  sale, whose whole pass would take ~15 ms or more) is written `pass_slice` sockets at a time by a
  task that yields to the event loop between slices. A newer level that arrives meanwhile goes to
  the rest of the pass at once, and then to those the pass already wrote: no socket waits for a
  whole pass of a level already out of date, and the hub keeps reading the streams and its sockets
  during a pass. Each client is handed a topic's levels in order, never one twice.
- Other frames queue; a client whose backlog passes `max_pending` is closed with code 4000
  ("resync"), telling it to reconnect and resume from its last sequence number.
- Resume: a subscriber may send, per topic, the last sequence number it saw; if the hub's latest
  frame for that topic is newer (from the stream, or a snapshot from `snapshot(topic)`), it gets
  that frame first. For stock, the latest level *is* everything it missed.
- Private state topics (`cart:{id}`, `order:{number}`) coalesce too: a frame is the whole current
  state, so the latest is all a client needs. Their latest frame is kept only while someone
  watches them (there are many carts, few watched at once).
- Feed topics (`user:{id}`, `admin`) do not coalesce: every frame is a distinct fact. The hub keeps
  the last `replay_len` frames of each (for `max_replay_topics` topics, least recently used out) and
  replays those newer than a reconnecting client's `since`; when that buffer cannot prove nothing
  was missed (it is full past `since`, or this hub has none), the client gets `{"op": "resync"}`
  and refetches over HTTP.
- A topic may be shown to clients under another name (`label`): every user's feed is the hub's
  `user:{id}` topic, which its owner knows as `user`.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable

from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN

log = logging.getLogger("surge.hub")

RESYNC_CODE = 4000
COALESCING_PREFIXES = ("product:", "cart:", "order:")
RETAINED_PREFIXES = ("product:",)  # latest frame kept even with no subscriber (few, hot, public)

FANOUTS = ("raw", "direct", "queued")
# sockets written per slice of a rolling pass (~2 ms at ~7 us a write); at 10,000 sockets 256 gave
# a lower p99 and seen p99 than 512 or 128 (loadtests/bench_realtime.py, raw-256 raw raw-128)
PASS_SLICE = 256
# watchers above which a topic's passes roll: below, a pass is short, and one more turn of the event
# loop per slice cost ~1 ms of p50 at 1,000 sockets for nothing (loadtests/bench_realtime.py)
ROLL_ABOVE = 2048

Snapshot = Callable[[str], Awaitable[tuple[int, dict] | None]]


def coalesces(topic: str) -> bool:
    return topic.startswith(COALESCING_PREFIXES)


class Outgoing:
    """One frame, encoded once for all its recipients: the UTF-8 payload and the whole websocket
    frame (header + payload), built on first use."""

    __slots__ = ("text", "_payload", "_wire")

    def __init__(self, text: str):
        self.text, self._payload, self._wire = text, None, None

    @property
    def payload(self) -> bytes:
        if self._payload is None:
            self._payload = self.text.encode()
        return self._payload

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = Frame(Opcode.TEXT, self.payload).serialize(mask=False, extensions=[])
        return self._wire


def direct_writer(ws) -> Callable[[Outgoing], bool] | None:
    """For a `websockets` asyncio connection, a function that writes a frame now, without awaiting,
    when the socket can take it (True), or refuses (False: the transport is paused above its write
    limit, or a fragmented send is in progress), so the caller queues it instead. A connection that
    is no longer open takes (and drops) the frame, as `broadcast()` skips it. Anything else (a test's
    fake socket) has no direct writer."""
    protocol = getattr(ws, "protocol", None)
    if protocol is None or not hasattr(ws, "send_data") or not hasattr(ws, "paused"):
        return None

    def write(out: Outgoing) -> bool:
        if ws.paused or ws.send_in_progress is not None:
            return False
        if protocol.state is not OPEN:
            return True  # closing: nothing more to send; the handler unsubscribes it
        if protocol.extensions:  # per-message compression: the protocol must build each frame
            protocol.send_text(out.payload)
            ws.send_data()
        else:  # no extensions: every server frame is the same bytes
            ws.transport.write(out.wire)
        return True

    return write


class Client:
    """One connection's outbox: at most one pending frame per coalescing topic, a bounded backlog
    for the rest, and one task that sends them in order."""

    __slots__ = ("ws", "max_pending", "pending", "wake", "dropped", "topics", "sending", "write_now", "stamps",
                 "fd", "transport", "protocol")
    _ids = itertools.count()

    def __init__(self, ws, max_pending: int, direct: bool = False, stamps: list | None = None, raw: bool = False):
        self.ws = ws
        self.max_pending = max_pending
        self.pending: dict[object, str] = {}  # insertion-ordered
        self.wake = asyncio.Event()
        self.dropped = False
        self.topics: set[str] = set()
        self.sending = False  # the sender task is inside a send (or waiting for the socket to drain)
        self.write_now = direct_writer(ws) if direct else None
        self.stamps = stamps  # (frame, time written) for a sample of clients: hub-side latency
        # raw fan-out: the socket's descriptor, for a connection whose every frame is the shared bytes
        # (no extensions, no TLS: bytes written to the descriptor would bypass the encryption); -1 for
        # anything else, which goes through `push`
        self.fd, self.transport, self.protocol = -1, getattr(ws, "transport", None), getattr(ws, "protocol", None)
        if raw and self.write_now is not None and not self.protocol.extensions \
                and hasattr(self.transport, "get_extra_info") and self.transport.get_extra_info("sslcontext") is None:
            sock = self.transport.get_extra_info("socket")
            self.fd = sock.fileno() if sock is not None else -1

    def push(self, topic: str, out: Outgoing) -> bool:
        """Write the frame now if this client is idle and its socket can take it; otherwise queue it
        (`offer`). False when the client fell too far behind and must resync."""
        if self.write_now is not None and not self.pending and not self.sending and not self.dropped \
                and self.write_now(out):
            if self.stamps is not None:
                self.stamps.append((out.text, time.time()))
            return True
        return self.offer(topic, out.text)

    def offer(self, topic: str, frame: str) -> bool:
        """Queue a frame; False when the client fell too far behind and must resync."""
        if self.dropped:
            return False
        if coalesces(topic):
            self.pending.pop(topic, None)  # latest value wins, and moves to the back
            self.pending[topic] = frame
        else:
            self.pending[(topic, next(self._ids))] = frame
        if len(self.pending) > self.max_pending:
            self.dropped = True
            self.pending.clear()
        self.wake.set()
        return not self.dropped

    async def send_forever(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.dropped:
                await self.ws.close(RESYNC_CODE, "resync: client too slow")
                return
            frames, self.pending = list(self.pending.values()), {}
            self.sending = True
            try:
                for frame in frames:
                    await self.ws.send(frame)
                    if self.stamps is not None:
                        self.stamps.append((frame, time.time()))
            finally:
                self.sending = False


class RollingPass:
    """A coalescing topic's pass in progress: its newest frame, the seq each watcher was handed, and
    the ring of watchers the pass goes round (who was written longest ago comes next)."""

    __slots__ = ("seq", "out", "handed", "ring", "task")

    def __init__(self, seq: int, out: Outgoing, watchers):
        self.seq, self.out = seq, out
        self.handed: dict[Client, int] = {}
        self.ring: deque[Client] = deque(watchers)
        self.task: asyncio.Task | None = None  # held here: the event loop keeps only a weak reference


class Hub:
    def __init__(self, snapshot: Snapshot | None = None, max_pending: int = 256, replay_len: int = 128,
                 max_replay_topics: int = 10_000, fanout: str = "raw", stamp_every: int = 0,
                 pass_slice: int = PASS_SLICE, roll_above: int = ROLL_ABOVE):
        if fanout not in FANOUTS:
            raise ValueError(f"fanout must be one of {FANOUTS}, not {fanout!r}")
        if pass_slice < 0 or roll_above < 0:
            raise ValueError("pass_slice and roll_above must be >= 0 (pass_slice 0: every pass in one go)")
        # coalescing topics with more than `roll_above` watchers are written in rolling passes of
        # `pass_slice` sockets a slice (0: never)
        self.pass_slice, self.roll_above = pass_slice, roll_above
        self.rolling: dict[str, RollingPass] = {}
        self.direct, self.raw = fanout in ("direct", "raw"), fanout == "raw"
        # every `stamp_every`-th client records when each frame was written to it (0: none)
        self.stamp_every = stamp_every
        self.stamps: list[tuple[str, float]] = []
        self._connections = itertools.count()
        self.subscribers: dict[str, set[Client]] = {}
        self.latest: dict[str, tuple[int, str]] = {}  # topic -> (seq, frame), for resume
        self.seq: dict[str, int] = {}  # topic -> last seq, for topics the hub numbers itself (not one per SKU ever seen)
        self.snapshot = snapshot
        self.max_pending = max_pending
        self.connected = 0
        self.replay_len = replay_len
        self.max_replay_topics = max_replay_topics
        self.recent: OrderedDict[str, deque[tuple[int, str]]] = OrderedDict()  # feed topic -> last frames

    def watched(self, topic: str) -> bool:
        """Someone is subscribed: worth building a frame that costs a query."""
        return bool(self.subscribers.get(topic))

    def connect(self, ws) -> Client:
        self.connected += 1
        sampled = self.stamp_every and next(self._connections) % self.stamp_every == 0
        return Client(ws, self.max_pending, self.direct, self.stamps if sampled else None, raw=self.raw)

    def disconnect(self, client: Client) -> None:
        self.connected -= 1
        self.unsubscribe(client)

    @staticmethod
    def frame(topic: str, seq: int, data: dict) -> str:
        return json.dumps({"topic": topic, "seq": seq, "data": data}, separators=(",", ":"))

    def publish(self, topic: str, data: dict, seq: int | None = None, label: str | None = None) -> None:
        if seq is None:  # numbered by the hub (the heartbeat): the only topics `seq` remembers
            seq = self.seq[topic] = self.seq.get(topic, 0) + 1
        elif seq <= self.latest.get(topic, (-1, ""))[0]:
            return  # an older value arriving late (e.g. a replayed event): never move backwards
        frame = self.frame(label or topic, seq, data)
        if coalesces(topic):
            if topic.startswith(RETAINED_PREFIXES) or self.watched(topic):
                self.latest[topic] = (seq, frame)
        else:
            self._remember(topic, seq, frame)
        watchers = self.subscribers.get(topic)
        rolling = self.rolling.get(topic)
        if rolling is not None:  # a pass is under way: the rest of it, then the ones it wrote, get this
            rolling.seq, rolling.out = seq, Outgoing(frame)
            return
        if not watchers:
            return
        out = Outgoing(frame)
        if self.pass_slice and len(watchers) > max(self.roll_above, self.pass_slice) and coalesces(topic):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None  # no event loop (a synchronous caller): one pass now, as below
            if loop is not None:
                rolling = self.rolling[topic] = RollingPass(seq, out, watchers)
                rolling.task = loop.create_task(self._roll(topic, rolling))
                return
        for client in self._pass(topic, out, watchers):
            self.unsubscribe(client)

    def _pass(self, topic: str, out: Outgoing, clients: Iterable[Client]) -> list[Client]:
        """Hand one frame to each client; returns those that fell too far behind (to be dropped)."""
        if self.raw:
            return self._write_raw(topic, out, clients)
        return [client for client in clients if not client.push(topic, out)]

    async def _roll(self, topic: str, rolling: RollingPass) -> None:
        """Go round the ring of a topic's watchers a slice at a time, yielding to the event loop
        between slices, handing each the newest frame it lacks, until one whole turn of the ring
        met nobody without it. A newer frame may arrive during any yield: the slices after take it,
        and the turn goes on past where it began, so whoever was written longest ago is next and no
        socket waits more than about one turn."""
        handed, ring, size = rolling.handed, rolling.ring, self.pass_slice
        current, fresh = -1, 0  # the newest seq, and how many watchers met in a row hold it now
        try:
            while True:
                seq, out = rolling.seq, rolling.out
                if seq != current:
                    current, fresh = seq, 0
                part = []
                for _ in range(min(size, len(ring))):
                    client = ring.popleft()
                    if topic not in client.topics:
                        handed.pop(client, None)  # left: out of the ring, and forgotten (a flash sale's
                        continue  # pass may go on for minutes while shoppers come and go)
                    ring.append(client)
                    fresh += 1
                    if handed.get(client, -1) < seq:
                        handed[client] = seq
                        part.append(client)
                for client in self._pass(topic, out, part):
                    self.unsubscribe(client)
                if fresh >= len(ring):
                    return
                await asyncio.sleep(0)  # the streams, the sockets and other topics get their turn
        except Exception:  # a bug, not a client: say so; the topic's next level starts a fresh pass
            log.exception("rolling pass failed", extra={"topic": topic})
        finally:
            del self.rolling[topic]

    @staticmethod
    def _write_raw(topic: str, out: Outgoing, watchers: Iterable[Client]) -> list[Client]:
        """The raw fan-out's pass: `push` unrolled into one loop, the frame going to each idle
        socket's descriptor with one non-blocking `write()` (the syscall is most of a socket's cost;
        this keeps the Python around it small). Only while the transport holds nothing, so bytes
        never overtake what it buffers: a partial write hands the rest to the transport (which then
        owns order and the pause above its write limit); a full kernel buffer (EAGAIN) queues the
        frame in the client's coalescing outbox like any busy client's; any other error is given to
        the transport to meet and close the connection. A closing transport is skipped without a
        write: its descriptor may be closed already and its number reused by another socket.
        Returns the clients that fell too far behind (to be dropped)."""
        wire, text = out.wire, out.text
        size, write, laggards = len(wire), os.write, []
        for client in watchers:
            fd = client.fd
            if fd < 0 or client.pending or client.sending or client.dropped:
                if not client.push(topic, out):
                    laggards.append(client)
                continue
            transport = client.transport
            if transport.is_closing() or client.protocol.state is not OPEN:
                continue  # closing: nothing more to send; its handler unsubscribes it
            if transport.get_write_buffer_size() or client.ws.send_in_progress is not None:
                if not client.offer(topic, text):
                    laggards.append(client)
                continue
            try:
                sent = write(fd, wire)
            except BlockingIOError:
                if not client.offer(topic, text):
                    laggards.append(client)
                continue
            except OSError:
                transport.write(wire)
                continue
            if sent < size:
                transport.write(wire[sent:])
            if client.stamps is not None:
                client.stamps.append((text, time.time()))
        return laggards

    def last_seq(self, topic: str) -> int:
        """The newest seq of a feed topic while its replay buffer is kept (0 when none is)."""
        ring = self.recent.get(topic)
        return ring[-1][0] if ring else self.seq.get(topic, 0)

    def _remember(self, topic: str, seq: int, frame: str) -> None:
        ring = self.recent.get(topic)
        if ring is None:
            ring = self.recent[topic] = deque(maxlen=self.replay_len)
            if len(self.recent) > self.max_replay_topics:
                self.recent.popitem(last=False)
        else:
            self.recent.move_to_end(topic)
        ring.append((seq, frame))

    def replay(self, client: Client, topic: str, since: int, label: str | None = None) -> None:
        """Offer the feed frames newer than `since`, or a resync notice when some may be gone."""
        ring = self.recent.get(topic)
        if ring is None or (len(ring) == ring.maxlen and ring[0][0] > since + 1):
            client.offer("_control", json.dumps({"op": "resync", "topic": label or topic}))
            return
        for seq, frame in ring:
            if seq > since:
                client.offer(topic, frame)

    async def subscribe(self, client: Client, topics: set[str], since: dict[str, int],
                        labels: dict[str, str] | None = None) -> None:
        """`since` is keyed by the names clients know (`labels`: hub topic → client name)."""
        labels = labels or {}
        for topic in topics:
            self.subscribers.setdefault(topic, set()).add(client)
            client.topics.add(topic)
        for topic in sorted(topics):
            label = labels.get(topic, topic)
            if not coalesces(topic):
                if label in since:
                    self.replay(client, topic, since[label], label)
                continue
            after = since.get(label, -1)
            latest = self.latest.get(topic)
            if latest is None and self.snapshot is not None:
                snap = await self.snapshot(topic)
                # kept only if still watched: the client may have left while the query ran
                if snap is not None and topic not in self.latest and self.watched(topic):
                    latest = self.latest[topic] = (snap[0], self.frame(topic, snap[0], snap[1]))
                latest = self.latest.get(topic, latest)
            if latest is not None and latest[0] > after:
                client.offer(topic, latest[1])
                after = latest[0]
            rolling = self.rolling.get(topic)
            if rolling is not None:  # a pass under way takes it in, and writes it only what is newer
                rolling.handed[client] = after
                rolling.ring.append(client)

    def unsubscribe(self, client: Client) -> None:
        for topic in client.topics:
            watchers = self.subscribers.get(topic)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    del self.subscribers[topic]
                    if coalesces(topic) and not topic.startswith(RETAINED_PREFIXES):
                        self.latest.pop(topic, None)
        client.topics.clear()
