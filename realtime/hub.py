"""Topic fan-out for the realtime hub, following the `websockets` broadcasting guide.

- `publish` never awaits a client: it hands the frame to each subscriber's `Client`, whose own
  sender task writes to the socket. A slow client delays nobody else.
- Stock ticks coalesce: a client holds at most one unsent frame per coalescing topic (the newest),
  so a slow reader of product pages skips stale levels instead of piling them up.
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
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

RESYNC_CODE = 4000
COALESCING_PREFIXES = ("product:", "cart:", "order:")
RETAINED_PREFIXES = ("product:",)  # latest frame kept even with no subscriber (few, hot, public)

Snapshot = Callable[[str], Awaitable[tuple[int, dict] | None]]


def coalesces(topic: str) -> bool:
    return topic.startswith(COALESCING_PREFIXES)


class Client:
    """One connection's outbox: at most one pending frame per coalescing topic, a bounded backlog
    for the rest, and one task that sends them in order."""

    _ids = itertools.count()

    def __init__(self, ws, max_pending: int):
        self.ws = ws
        self.max_pending = max_pending
        self.pending: dict[object, str] = {}  # insertion-ordered
        self.wake = asyncio.Event()
        self.dropped = False
        self.topics: set[str] = set()

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
            for frame in frames:
                await self.ws.send(frame)


class Hub:
    def __init__(self, snapshot: Snapshot | None = None, max_pending: int = 256, replay_len: int = 128,
                 max_replay_topics: int = 10_000):
        self.subscribers: dict[str, set[Client]] = {}
        self.latest: dict[str, tuple[int, str]] = {}  # topic -> (seq, frame), for resume
        self.seq: dict[str, int] = {}
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
        return Client(ws, self.max_pending)

    def disconnect(self, client: Client) -> None:
        self.connected -= 1
        self.unsubscribe(client)

    @staticmethod
    def frame(topic: str, seq: int, data: dict) -> str:
        return json.dumps({"topic": topic, "seq": seq, "data": data}, separators=(",", ":"))

    def publish(self, topic: str, data: dict, seq: int | None = None, label: str | None = None) -> None:
        if seq is None:
            seq = self.seq.get(topic, 0) + 1
        elif seq <= self.latest.get(topic, (-1, ""))[0]:
            return  # an older value arriving late (e.g. a replayed event): never move backwards
        self.seq[topic] = seq
        frame = self.frame(label or topic, seq, data)
        if coalesces(topic):
            if topic.startswith(RETAINED_PREFIXES) or self.watched(topic):
                self.latest[topic] = (seq, frame)
        else:
            self._remember(topic, seq, frame)
        for client in list(self.subscribers.get(topic, ())):
            if not client.offer(topic, frame):
                self.unsubscribe(client)

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
