"""The realtime hub process: a `websockets` server that streams topics to browsers.

Foundation scope: health check before the upgrade (`GET /healthz`), a subscribe protocol, and a
`heartbeat` topic that ticks every second with a sequence number. Stock, cart, order and admin
topics join when their producers exist (see the events issue).

Protocol (JSON text frames):
  client → {"op": "subscribe", "topics": ["heartbeat"]}
  server → {"op": "subscribed", "topics": [...]}
  server → {"topic": "heartbeat", "seq": n, "data": {"time": epoch_s}}
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import time
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from storage.logs import configure_logging

log = logging.getLogger("surge.hub")

PUBLIC_TOPICS = {"heartbeat"}
CLIENT_QUEUE = 256


class Hub:
    """Topic fan-out with one bounded queue and one sender task per client (never awaits clients one by one)."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[asyncio.Queue]] = {}
        self.seq: dict[str, int] = {}

    def publish(self, topic: str, data: dict) -> None:
        self.seq[topic] = self.seq.get(topic, 0) + 1
        frame = json.dumps({"topic": topic, "seq": self.seq[topic], "data": data})
        for queue in list(self.subscribers.get(topic, ())):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:
                # A laggard: drop it rather than slow anyone else. Make room for the sentinel that
                # tells its sender to close with the resync code.
                queue.get_nowait()
                queue.put_nowait(None)
                for subs in self.subscribers.values():
                    subs.discard(queue)

    async def handle(self, ws: ServerConnection) -> None:
        queue: asyncio.Queue = asyncio.Queue(CLIENT_QUEUE)
        topics: set[str] = set()

        async def sender() -> None:
            while (frame := await queue.get()) is not None:
                await ws.send(frame)
            await ws.close(4000, "resync: client too slow")

        send_task = asyncio.create_task(sender())
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                    wanted = set(msg.get("topics", [])) if msg.get("op") == "subscribe" else set()
                except (ValueError, AttributeError):
                    await ws.send(json.dumps({"op": "error", "detail": "expected a JSON object"}))
                    continue
                allowed = wanted & PUBLIC_TOPICS
                for topic in allowed:
                    self.subscribers.setdefault(topic, set()).add(queue)
                topics |= allowed
                await ws.send(json.dumps({"op": "subscribed", "topics": sorted(allowed),
                                          "refused": sorted(wanted - allowed)}))
        finally:
            for topic in topics:
                self.subscribers.get(topic, set()).discard(queue)
            send_task.cancel()

    @property
    def clients(self) -> int:
        return len({id(q) for qs in self.subscribers.values() for q in qs})


def _health(_conn: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return Response(HTTPStatus.OK, "OK", Headers([("Content-Type", "text/plain")]), b"ok\n")
    return None


async def run(host: str, port: int, heartbeat_s: float = 1.0) -> None:
    hub = Hub()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(hub.handle, host, port, process_request=_health, ping_interval=20, ping_timeout=20):
        log.info("hub listening", extra={"host": host, "port": port})

        async def heartbeat() -> None:
            while True:
                hub.publish("heartbeat", {"time": time.time(), "clients": hub.clients})
                await asyncio.sleep(heartbeat_s)

        beat = asyncio.create_task(heartbeat())
        await stop
        beat.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description="Surge realtime hub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    configure_logging(args.log_level, component="hub")
    asyncio.run(run(args.host, args.port))


if __name__ == "__main__":
    main()
