"""The realtime hub process: a `websockets` server that streams topics to browsers.

Scope so far: health check before the upgrade (`GET /healthz`), a subscribe protocol, a `heartbeat`
topic that ticks every second, and `product:{sku}` topics fed from the inventory event stream
(committed stock levels, relayed from the outbox by EventRelay), whose sequence number is the SKU
row's version. Cart, order, user and admin topics, resume and coalescing are the events issue's.

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
PUBLIC_PREFIXES = ("product:",)
INVENTORY_STREAM = "surge:events:inventory"


def is_public(topic: str) -> bool:
    return topic in PUBLIC_TOPICS or (topic.startswith(PUBLIC_PREFIXES) and len(topic) <= 80)
CLIENT_QUEUE = 256


class Hub:
    """Topic fan-out with one bounded queue and one sender task per client (never awaits clients one by one)."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[asyncio.Queue]] = {}
        self.seq: dict[str, int] = {}

    def publish(self, topic: str, data: dict, seq: int | None = None) -> None:
        self.seq[topic] = self.seq.get(topic, 0) + 1 if seq is None else seq
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
                allowed = {t for t in wanted if isinstance(t, str) and is_public(t)}
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


async def consume_inventory(hub: Hub, redis_url: str) -> None:
    """Fan committed stock levels out to `product:{sku}` subscribers. Starts at the stream's end
    (a client reads the current level over HTTP when it subscribes); reconnects if Valkey drops."""
    import redis.asyncio as aioredis

    last = "$"
    while True:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_connect_timeout=3)
        try:
            while True:
                batches = await client.xread({INVENTORY_STREAM: last}, block=1000, count=500)
                for _stream, entries in batches or []:
                    for entry_id, fields in entries:
                        last = entry_id
                        if fields.get("type") == "StockLevelChanged":
                            level = json.loads(fields["payload"])
                            hub.publish(f"product:{level['sku']}", {
                                "sku": level["sku"], "available": level["available"], "on_hand": level["on_hand"],
                                "sold_out": level["available"] <= 0}, seq=level["version"])
        except Exception as exc:  # Valkey away: keep the hub up, try again
            log.warning("inventory stream unavailable; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(1)
        finally:
            await client.aclose()


async def run(host: str, port: int, heartbeat_s: float = 1.0, redis_url: str | None = None) -> None:
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

        tasks = [asyncio.create_task(heartbeat())]
        if redis_url:
            tasks.append(asyncio.create_task(consume_inventory(hub, redis_url)))
        await stop
        for task in tasks:
            task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description="Surge realtime hub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--redis-url", default=None, help="Valkey/Redis holding the event streams")
    args = parser.parse_args()
    configure_logging(args.log_level, component="hub")
    asyncio.run(run(args.host, args.port, redis_url=args.redis_url))


if __name__ == "__main__":
    main()
