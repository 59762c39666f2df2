"""Each Api replica's own HTTP server, on one port that every replica on the node shares.

Why: on the flash-sale path Serve's per-request machinery in the replica costs ~0.35 ms of CPU and
HAProxy another ~0.07 ms, more than the reservation itself (README, "Where the time goes"). With
`SURGE_REPLICA_PORT` set, every replica also serves the same ASGI app (same `AppContext`, same
middleware, same fast path) with uvicorn on its own event loop, and the socket is bound with
`SO_REUSEPORT`: the kernel spreads new connections over the replicas bound to the port. There is
no balancer to keep in step with replica restarts: a replica that stops closes its socket and the
kernel stops choosing it; one that starts joins.

What this listener does that Serve's ingress did: a request id echoed in `X-Request-ID`, the
request timeout (`request_timeout_s`, answered 503 problem+json if nothing was sent yet), a bound
on requests in flight per replica (`api_max_ongoing_requests`, past it 429 problem+json with
Retry-After, before any work), and the client address is the socket peer (no trusted proxy in
front, so `X-Forwarded-For` is ignored). Its own answers are counted in `surge_http_*`: a shed
request under the route label `shed`, a timed-out one as 503 under its route.
What it does not: Serve's own request metrics do not see this traffic (our `surge_http_*` metrics
do), nor does Serve's default autoscaling policy (`serve_app/autoscaling.py` adds what each
replica reports of it), and there is no health-checked fallback in front of it.
When a replica stops, connections the kernel had queued on its socket but the replica had not yet
accepted are reset, unless the node sets `net.ipv4.tcp_migrate_req=1` (Linux 5.14+), which hands
them to another socket on the port; accepted ones finish (uvicorn's graceful shutdown).
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time

import uvicorn

from serve_app.errors import problem
from serve_app.middleware import safe_request_id
from serve_app.ratelimit import CLIENT_HOPS_KEY
from storage.logs import request_id_var

log = logging.getLogger("surge.api")


def bind_shared(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket other processes of this user may bind too (`SO_REUSEPORT`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ListenerEdge:
    """ASGI wrapper for requests that did not come through Serve's ingress: the request id Serve
    would have assigned and echoed, the client address from the socket, and the request timeout.

    A request id is this process's random prefix and a counter: unique without a `uuid4()` (and its
    `urandom` call) per request."""

    def __init__(self, app, request_timeout_s: float, max_in_flight: int | None = None, metrics=None):
        self.app = app
        self.request_timeout_s = request_timeout_s
        self.max_in_flight = max_in_flight
        self.metrics = metrics  # an `ApiMetrics`: the answers made here (429, timeout 503) are counted
        self.in_flight = 0
        self._prefix = os.urandom(8).hex()
        self._ids = itertools.count(1)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = None
        headers = scope["headers"]
        for name, value in headers:
            if name == b"x-request-id":
                rid = safe_request_id(value)
                break
        if rid is None:  # none sent, or not one we keep: ours replaces it for the middleware to find
            rid = f"{self._prefix}{next(self._ids):x}"
            headers = [(n, v) for n, v in headers if n != b"x-request-id"]
            headers.append((b"x-request-id", rid.encode()))
        scope = {**scope, "headers": headers, CLIENT_HOPS_KEY: 0}
        rid_header = (b"x-request-id", rid.encode())
        started = False

        async def send_with_id(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), rid_header]}
            await send(message)

        began = time.perf_counter()
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            token = request_id_var.set(rid)
            try:
                return await problem(429, "overloaded", f"This replica has {self.in_flight} requests in flight; retry "
                                     "shortly.", scope.get("path"), headers={"Retry-After": "1"})(scope, receive, send_with_id)
            finally:
                request_id_var.reset(token)
                if self.metrics is not None:  # never routed: counted under its own label
                    self.metrics.observe_request(scope.get("method", ""), "shed", 429, time.perf_counter() - began)
        self.in_flight += 1
        try:
            async with asyncio.timeout(self.request_timeout_s):
                await self.app(scope, receive, send_with_id)
        except TimeoutError:
            if started:
                raise  # a half-sent answer cannot become a problem: uvicorn closes the connection
            token = request_id_var.set(rid)
            try:
                log.warning("request timed out", extra={"path": scope.get("path"), "timeout_s": self.request_timeout_s})
                await problem(503, "timeout", f"No answer within {self.request_timeout_s:g} s; safe to retry with "
                              "the same ids.", scope.get("path"), headers={"Retry-After": "1"})(scope, receive, send_with_id)
            finally:
                request_id_var.reset(token)
                if self.metrics is not None:  # the app's middleware left this cancelled request to us
                    route = getattr(scope.get("route"), "path", None) or "unmatched"
                    self.metrics.observe_request(scope.get("method", ""), route, 503, time.perf_counter() - began)
        finally:
            self.in_flight -= 1


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        """The replica's process and its signals belong to Ray; Serve stops us through `stop()`."""
        yield


class ReplicaListener:
    """uvicorn on a shared port, on the running event loop (the one that owns the app's pools and
    actor handles). `start()` returns once the socket accepts; `stop()` stops accepting and lets
    requests in flight finish."""

    def __init__(self, app, host: str, port: int, request_timeout_s: float, max_in_flight: int | None = None,
                 backlog: int = 2048, metrics=None):
        self.host, self.port, self.backlog = host, port, backlog
        self._edge = ListenerEdge(app, request_timeout_s, max_in_flight, metrics)
        self._config = uvicorn.Config(self._edge, loop="none", http="httptools", lifespan="off", log_config=None,
                                      access_log=False, proxy_headers=False, server_header=False, backlog=backlog,
                                      timeout_graceful_shutdown=request_timeout_s)
        self._server = _Server(self._config)
        self._task: asyncio.Task | None = None

    @property
    def in_flight(self) -> int:
        """Requests this listener has begun and not yet answered (what autoscaling counts)."""
        return self._edge.in_flight

    async def start(self, timeout_s: float = 10) -> None:
        sock = bind_shared(self.host, self.port, self.backlog)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="replica-listener")
        async with asyncio.timeout(timeout_s):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises what stopped it
                    raise RuntimeError("the replica listener stopped while starting")
                await asyncio.sleep(0.01)
        log.info("replica listener on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._task = None
