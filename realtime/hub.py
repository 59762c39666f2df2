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
"""
from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable

RESYNC_CODE = 4000
COALESCING_PREFIXES = ("product:",)

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
    def __init__(self, snapshot: Snapshot | None = None, max_pending: int = 256):
        self.subscribers: dict[str, set[Client]] = {}
        self.latest: dict[str, tuple[int, str]] = {}  # topic -> (seq, frame), for resume
        self.seq: dict[str, int] = {}
        self.snapshot = snapshot
        self.max_pending = max_pending
        self.connected = 0

    def connect(self, ws) -> Client:
        self.connected += 1
        return Client(ws, self.max_pending)

    def disconnect(self, client: Client) -> None:
        self.connected -= 1
        self.unsubscribe(client)

    @staticmethod
    def frame(topic: str, seq: int, data: dict) -> str:
        return json.dumps({"topic": topic, "seq": seq, "data": data}, separators=(",", ":"))

    def publish(self, topic: str, data: dict, seq: int | None = None) -> None:
        if seq is None:
            seq = self.seq.get(topic, 0) + 1
        elif seq <= self.latest.get(topic, (-1, ""))[0]:
            return  # an older value arriving late (e.g. a replayed event): never move backwards
        self.seq[topic] = seq
        frame = self.frame(topic, seq, data)
        if coalesces(topic):
            self.latest[topic] = (seq, frame)
        for client in list(self.subscribers.get(topic, ())):
            if not client.offer(topic, frame):
                self.unsubscribe(client)

    async def subscribe(self, client: Client, topics: set[str], since: dict[str, int]) -> None:
        for topic in topics:
            self.subscribers.setdefault(topic, set()).add(client)
            client.topics.add(topic)
        for topic in sorted(topics):
            if not coalesces(topic):
                continue
            latest = self.latest.get(topic)
            if latest is None and self.snapshot is not None:
                snap = await self.snapshot(topic)
                if snap is not None and topic not in self.latest:
                    latest = self.latest[topic] = (snap[0], self.frame(topic, snap[0], snap[1]))
                latest = self.latest.get(topic, latest)
            if latest is not None and latest[0] > since.get(topic, -1):
                client.offer(topic, latest[1])

    def unsubscribe(self, client: Client) -> None:
        for topic in client.topics:
            self.subscribers.get(topic, set()).discard(client)
        client.topics.clear()
