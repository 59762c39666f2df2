"""The realtime hub process: a `websockets` server that streams topics to browsers.

Scope so far: health check before the upgrade (`GET /healthz`), a subscribe protocol, a `heartbeat`
topic that ticks every second, and `product:{sku}` topics fed from the inventory event stream
(committed stock levels, relayed from the outbox by EventRelay), whose sequence number is the SKU
row's version. Cart, order, user and admin topics, resume and coalescing are the events issue's.

Protocol (JSON text frames):
  client → {"op": "subscribe", "topics": ["heartbeat", "product:SKU-1"], "since": {"product:SKU-1": 41}}
  server → {"op": "subscribed", "topics": [...]}
  server → {"topic": "heartbeat", "seq": n, "data": {"time": epoch_s}}
  server → {"topic": "product:SKU-1", "seq": version, "data": {"sku", "available", "on_hand", "sold_out"}}
A product subscription first gets the current committed level when it is newer than `since`
(a fresh snapshot from Postgres, or the latest from the stream), then every change.
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

from realtime.hub import Hub, Snapshot
from storage.logs import configure_logging
from storage.pool import create_pool

log = logging.getLogger("surge.hub")

PUBLIC_TOPICS = {"heartbeat"}
PUBLIC_PREFIXES = ("product:",)
INVENTORY_STREAM = "surge:events:inventory"


def is_public(topic: str) -> bool:
    return topic in PUBLIC_TOPICS or (topic.startswith(PUBLIC_PREFIXES) and len(topic) <= 80)


def handler(hub: Hub):
    async def handle(ws: ServerConnection) -> None:
        client = hub.connect(ws)
        sender = asyncio.create_task(client.send_forever())
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                    if msg.get("op") != "subscribe" or not isinstance(msg.get("topics", []), list):
                        raise ValueError
                    wanted = {t for t in msg.get("topics", []) if isinstance(t, str)}
                    since = {t: int(v) for t, v in (msg.get("since") or {}).items()}
                except (ValueError, TypeError, AttributeError):
                    client.offer("_control", json.dumps({"op": "error", "detail": "expected {op: subscribe, topics: [...]}"}))
                    continue
                allowed = {t for t in wanted if is_public(t)}
                client.offer("_control", json.dumps({"op": "subscribed", "topics": sorted(allowed),
                                                     "refused": sorted(wanted - allowed)}))
                await hub.subscribe(client, allowed, since)
        finally:
            hub.disconnect(client)
            sender.cancel()

    return handle


def stock_snapshot(pool) -> Snapshot:
    """The committed level of a product topic's SKU, straight from Postgres."""
    async def snapshot(topic: str):
        row = await pool.fetchrow("select sku, on_hand, reserved, version from stock_levels where sku = $1",
                                  topic.removeprefix("product:"))
        if row is None:
            return None
        return row["version"], level_data(row["sku"], row["on_hand"] - row["reserved"], row["on_hand"])

    return snapshot


def level_data(sku: str, available: int, on_hand: int) -> dict:
    return {"sku": sku, "available": available, "on_hand": on_hand, "sold_out": available <= 0}


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
                            hub.publish(f"product:{level['sku']}",
                                        level_data(level["sku"], level["available"], level["on_hand"]),
                                        seq=level["version"])
        except Exception as exc:  # Valkey away: keep the hub up, try again
            log.warning("inventory stream unavailable; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(1)
        finally:
            await client.aclose()


async def run(host: str, port: int, heartbeat_s: float = 1.0, redis_url: str | None = None,
              database_url: str | None = None, origins: list[str] | None = None) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=4) if database_url else None
    hub = Hub(snapshot=stock_snapshot(pool) if pool else None)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    # Browsers send Origin: only the store's own pages may open a socket (cross-site websocket
    # hijacking); clients that send none (services, tests) are let in. No list = any origin.
    allowed = [*origins, None] if origins else None
    # No permessage-deflate: frames are small JSON, and a zlib context per socket cost ~45 KB of
    # memory and most of the per-frame CPU at 10,000 sockets (loadtests/bench_realtime.py).
    async with serve(handler(hub), host, port, process_request=_health, ping_interval=20, ping_timeout=20,
                     origins=allowed, compression=None):
        log.info("hub listening", extra={"host": host, "port": port})

        async def heartbeat() -> None:
            while True:
                hub.publish("heartbeat", {"time": time.time(), "clients": hub.connected})
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
    parser.add_argument("--database-url", default=None, help="PostgreSQL, for snapshots of current stock")
    parser.add_argument("--allowed-origin", action="append", default=[], help="an Origin browsers may connect from")
    args = parser.parse_args()
    configure_logging(args.log_level, component="hub")
    asyncio.run(run(args.host, args.port, redis_url=args.redis_url, database_url=args.database_url,
                    origins=args.allowed_origin))


if __name__ == "__main__":
    main()
