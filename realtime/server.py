"""The realtime hub process: a `websockets` server that streams topics to browsers.

Health check and Prometheus metrics before the upgrade (`GET /healthz`, `GET /metrics`), the Origin
check, a `heartbeat` topic that ticks every second, public `product:{sku}` topics, and private
topics authorised by `realtime/access.py`:
`cart:{id}`, `order:{number}`, `user` (the signed-in user's carts and orders) and `admin` (orders
feed, stock alerts, sales summaries from the Analytics actor). Everything is fed from the event
streams the EventRelay fills from the outbox, so nothing is shown that did not commit.

Protocol (JSON text frames):
  client → {"op": "auth", "token": "<access JWT>"}            (or the surge_access session cookie)
  server → {"op": "authenticated", "user_id", "role", "expires_at"} | {"op": "error", "code": "invalid_token"}
  client → {"op": "subscribe", "topics": ["product:SKU-1", "order:ORD-1", "user"],
            "since": {"product:SKU-1": 41}, "grants": {"order:ORD-1": "<signed order token>"}}
  server → {"op": "subscribed", "topics": [...], "refused": [...]}   (refused: not allowed to this caller)
  server → {"topic": "product:SKU-1", "seq": version, "data": {"sku", "available", "on_hand", "sold_out"}}
  server → {"topic": "cart:c_…", "seq": cart version, "data": {"lines" (with hold countdowns), "units", "subtotal_minor", …}}
  server → {"topic": "order:ORD-1", "seq": order version, "data": {"status", "carrier", "tracking_number", …}}
  server → {"topic": "user" | "admin", "seq": outbox id, "data": {"kind": "order" | "cart" | "alert" | "sales", …}}
  server → {"op": "resync", "topic": t}   (a feed's missed frames are gone: refetch over HTTP)
State topics (product, cart, order) first get the current committed state when it is newer than
`since`, then every change (latest wins); feed topics (user, admin) replay what is newer than
`since` from a short buffer. When the token behind private topics expires the socket is closed with
4001; a client re-authenticates before that by sending a fresh token (`op: auth`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie

import uvloop
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from realtime.access import ACCESS_COOKIE, CART_COOKIE, IDENTITY, Gatekeeper, Identity, user_topic
from realtime.fanout import EventFanout, Feeds, consume_events, count_views, snapshots
from realtime.heap import HubMetrics, freeze_survivors
from realtime.hub import FANOUTS, PASS_SLICE, ROLL_ABOVE, Hub
from realtime.settings import HubSettings
from storage.pool import create_pool
from storage.runtime import configure_process
from storage.settings import AuthSettings
from storage.signed_ids import CART_PURPOSE, ORDER_PURPOSE, CartTokens, OrderTokens, derived_secret
from storage.tokens import TokenConfig

log = logging.getLogger("surge.hub")

PUBLIC_TOPICS = {"heartbeat"}
PUBLIC_PREFIXES = ("product:",)
MAX_TOPICS_PER_MESSAGE = 100
AUTH_EXPIRED_CODE = 4001  # the token behind private topics expired: authenticate again, then resubscribe


def is_public(topic: str) -> bool:
    return topic in PUBLIC_TOPICS or (topic.startswith(PUBLIC_PREFIXES) and len(topic) <= 80)


def parse_cookies(header: str | None) -> dict[str, str]:
    jar = SimpleCookie()
    try:
        jar.load(header or "")
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


class HubConnection(ServerConnection):
    """`websockets`' server connection, freed by reference counting as soon as it closes.

    websockets 17.4 keeps one reference cycle in a closed connection: its Sans-I/O protocol holds
    its parser, a generator suspended in `Protocol.discard()` whose frame refers back to the
    protocol. So each closed connection's protocol, reader, logger adapter and ids (~11 objects,
    ~1.5 KB) waited for the cyclic GC's next full pass, which in a hub holding 10,000 sockets takes
    0.2-0.5 s and stops everything (README, "The realtime hub"); with the long-lived heap frozen
    (`freeze_survivors`) they would wait for its next reclaim. Once the connection is lost the protocol
    is CLOSED and nothing drives its parser again (`receive_eof` is idempotent), so closing the
    generator is what the generator's own end would have done. websockets' own fixes for the
    connection's other cycles (its logger adapter, its keepalive task) are the precedent."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.protocol.parser.close()


def handler(hub: Hub, gate: Gatekeeper | None = None, feeds: Feeds | None = None):
    feeds = feeds or Feeds()

    async def handle(ws: ServerConnection) -> None:
        client = hub.connect(ws)
        sender = asyncio.create_task(client.send_forever())
        cookies = parse_cookies(ws.request.headers.get("Cookie") if ws.request else None)
        who = await gate.identify(cookies.get(ACCESS_COOKIE)) if gate and cookies.get(ACCESS_COOKIE) else None
        guest_cart = gate.cart_from_cookie(cookies.get(CART_COOKIE)) if gate else None
        by_identity: set[str] = set()  # topics granted by `who` (not by a signed cart/order token)
        expiry: asyncio.Task | None = None

        async def expire(identity: Identity) -> None:
            await asyncio.sleep(max(0.0, identity.expires_at - time.time()))
            if who is identity and by_identity:
                await ws.close(AUTH_EXPIRED_CODE, "token expired: authenticate again")

        def control(body: dict) -> None:
            client.offer("_control", json.dumps(body))

        try:
            if who is not None and who.expires_at is not None:
                expiry = asyncio.create_task(expire(who))
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                    op = msg.get("op")
                    if op not in ("subscribe", "auth") or not isinstance(msg.get("topics", []), list):
                        raise ValueError
                    wanted = {t for t in msg.get("topics", []) if isinstance(t, str)}
                    if len(wanted) > MAX_TOPICS_PER_MESSAGE:  # each private topic may cost a query
                        raise ValueError
                    since = {t: int(v) for t, v in (msg.get("since") or {}).items()}
                    grants = {t: g for t, g in (msg.get("grants") or {}).items() if isinstance(g, str)}
                    token = msg.get("token")
                except (ValueError, TypeError, AttributeError):
                    control({"op": "error", "code": "bad_request",
                             "detail": "expected {op: subscribe, topics: [...]} or {op: auth, token: ...}"})
                    continue
                if token is not None:
                    fresh = await gate.identify(token) if gate and isinstance(token, str) else None
                    if fresh is None:
                        control({"op": "error", "code": "invalid_token", "detail": "token refused"})
                    elif by_identity and who is not None and (fresh.user_id, fresh.role) != (who.user_id, who.role):
                        # topics granted to one identity must not ride along under another
                        control({"op": "error", "code": "identity_changed", "detail": "reconnect to switch users"})
                    else:
                        who = fresh
                        if expiry is not None:
                            expiry.cancel()
                        expiry = asyncio.create_task(expire(who)) if who.expires_at is not None else None
                        control({"op": "authenticated", "user_id": who.user_id, "role": who.role,
                                 "expires_at": who.expires_at})
                if op != "subscribe":
                    continue
                allowed: set[str] = set()
                for topic in wanted:
                    if is_public(topic):
                        allowed.add(topic)
                    elif gate is not None and (why := await gate.allows(who, topic, grants.get(topic), guest_cart)):
                        allowed.add(topic)
                        if why == IDENTITY:
                            by_identity.add(topic)
                control({"op": "subscribed", "topics": sorted(allowed), "refused": sorted(wanted - allowed)})
                labels = {(user_topic(who.user_id) if t == "user" else t): t for t in allowed}
                await hub.subscribe(client, set(labels), since, labels)
                if "admin" in allowed and feeds.summary is not None and "admin" not in since:
                    seq, summary = feeds.summary
                    client.offer("admin", hub.frame("admin", seq, summary))
                for topic in allowed:
                    if topic.startswith("product:"):
                        feeds.views[topic.removeprefix("product:")] += 1
        finally:
            hub.disconnect(client)
            sender.cancel()
            if expiry is not None:
                expiry.cancel()

    return handle


def gatekeeper(pool, auth: AuthSettings | None, service_token: str | None) -> Gatekeeper:
    """Verifies what the API issued: access JWTs (the same key), the service token, and the signed
    cart and order ids (keys derived from the same root secret as the API derives them)."""
    root = (auth.jwt_secret if auth else None) or service_token
    tokens = TokenConfig(signing_key=None, verification_key=auth.jwt_secret, issuer=auth.jwt_issuer,
                         audience=auth.jwt_audience) if auth and auth.jwt_secret else None
    return Gatekeeper(pool, tokens, service_token=service_token,
                      cart_tokens=CartTokens(derived_secret(root, CART_PURPOSE)) if root else None,
                      order_tokens=OrderTokens(derived_secret(root, ORDER_PURPOSE)) if root else None)


def plain_http(metrics: HubMetrics | None = None):
    """What the hub answers before any upgrade: `GET /healthz`, and `GET /metrics` (Prometheus text)."""

    def answer(_conn: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return Response(HTTPStatus.OK, "OK", Headers([("Content-Type", "text/plain")]), b"ok\n")
        if request.path == "/metrics" and metrics is not None:
            return Response(HTTPStatus.OK, "OK", Headers([("Content-Type", CONTENT_TYPE_LATEST)]),
                            generate_latest(metrics.registry))
        return None

    return answer


def hub_server(hub: Hub, host: str, port: int, *, gate: Gatekeeper | None = None, feeds: Feeds | None = None,
               origins: list[str] | None = None, reuse_port: bool = False, metrics: HubMetrics | None = None):
    """The hub's `websockets` server (an async context manager), as `run` serves it."""
    # Browsers send Origin: only the store's own pages may open a socket (cross-site websocket
    # hijacking); clients that send none (services, tests) are let in. No list = any origin.
    allowed = [*origins, None] if origins else None
    # No permessage-deflate: frames are small JSON, and a zlib context per socket cost ~45 KB of
    # memory and most of the per-frame CPU at 10,000 sockets (loadtests/bench_realtime.py).
    # reuse_port: several hub processes share the port (SO_REUSEPORT), the kernel spreading new
    # connections over them; each reads the streams itself, so each delivers every change
    return serve(handler(hub, gate, feeds), host, port, process_request=plain_http(metrics), ping_interval=20,
                 ping_timeout=20, origins=allowed, compression=None, reuse_port=reuse_port,
                 create_connection=HubConnection)


def dump_stamps(hub: Hub, path: str) -> None:
    stamps, hub.stamps[:] = list(hub.stamps), []
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stamps, f, separators=(",", ":"))
    os.replace(tmp, path)


async def run(host: str, port: int, heartbeat_s: float = 1.0, redis_url: str | None = None,
              database_url: str | None = None, origins: list[str] | None = None,
              auth: AuthSettings | None = None, service_token: str | None = None, fanout: str = "raw",
              stamps_path: str | None = None, stamp_every: int = 100, pass_slice: int = PASS_SLICE,
              reuse_port: bool = False, gc_freeze_s: float = 0, gc_reclaim_s: float = 0) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=4) if database_url else None
    hub = Hub(snapshot=snapshots(pool) if pool else None, fanout=fanout,
              stamp_every=stamp_every if stamps_path else 0, pass_slice=pass_slice)
    feeds = Feeds()
    gate = gatekeeper(pool, auth, service_token)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    if stamps_path:  # benchmarks: SIGUSR1 writes the sampled send times so far, and starts afresh
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_stamps, hub, stamps_path)
    metrics = HubMetrics(lambda: hub.connected)
    async with hub_server(hub, host, port, gate=gate, feeds=feeds, origins=origins, reuse_port=reuse_port,
                          metrics=metrics):
        log.info("hub listening", extra={"host": host, "port": port})

        async def heartbeat() -> None:
            while True:
                hub.publish("heartbeat", {"time": time.time(), "clients": hub.connected})
                await asyncio.sleep(heartbeat_s)

        tasks = [asyncio.create_task(heartbeat())]
        if gc_freeze_s:
            tasks.append(asyncio.create_task(freeze_survivors(gc_freeze_s, gc_reclaim_s)))
        if redis_url:
            tasks.append(asyncio.create_task(consume_events(EventFanout(hub, pool, feeds), redis_url)))
            tasks.append(asyncio.create_task(count_views(feeds, redis_url)))
        await stop
        for task in tasks:
            task.cancel()
    metrics.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Surge realtime hub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--redis-url", default=None, help="Valkey/Redis holding the event streams")
    parser.add_argument("--database-url", default=None, help="PostgreSQL, for snapshots of current stock")
    parser.add_argument("--allowed-origin", action="append", default=[], help="an Origin browsers may connect from")
    parser.add_argument("--fanout", choices=list(FANOUTS), default="raw",
                        help="raw: one pass writes each frame to every idle socket's descriptor (default); direct: "
                             "the same pass through each socket's asyncio transport; queued: every frame through "
                             "each client's sender task (older paths, for benchmarks)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="event loop: uvloop (default: less CPU per socket and per wakeup) or asyncio's own")
    parser.add_argument("--pass-slice", type=int, default=PASS_SLICE,
                        help=f"a topic with more than {ROLL_ABOVE:,} watchers is written this many sockets at a time, the "
                             "loop running between (a newer level goes to the rest at once); 0: every pass in one "
                             "go (the older path, for benchmarks)")
    parser.add_argument("--stamps", default=None, help="benchmarks: on SIGUSR1 write [frame, time sent] of a "
                        "sample of clients (one in --stamp-every) to this file")
    parser.add_argument("--stamp-every", type=int, default=100)
    parser.add_argument("--reuse-port", action="store_true",
                        help="bind with SO_REUSEPORT, so several hub processes on this host share the port (one per core)")
    args = parser.parse_args()
    settings = HubSettings()
    configure_process(args.log_level, "hub", settings.gc_gen0_threshold)
    auth = AuthSettings()  # SURGE_JWT_SECRET & co.: private topics stay closed without it
    serving = run(args.host, args.port, redis_url=args.redis_url, database_url=args.database_url,
                  origins=args.allowed_origin, auth=auth, service_token=settings.admin_token,
                  fanout=args.fanout, stamps_path=args.stamps, stamp_every=args.stamp_every,
                  pass_slice=args.pass_slice, reuse_port=args.reuse_port, gc_freeze_s=settings.hub_gc_freeze_s,
                  gc_reclaim_s=settings.hub_gc_reclaim_s)
    (uvloop.run if args.loop == "uvloop" else asyncio.run)(serving)


if __name__ == "__main__":
    main()
