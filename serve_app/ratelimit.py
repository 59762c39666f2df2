"""Rate limits in Valkey/Redis (the `limits` library, moving windows), shared by every replica.

`RateLimit("search")` is a FastAPI dependency any route can declare; sign-in uses `RateLimiter`
directly to count failures per account. If Valkey is unreachable the limiter fails open (logged):
the store keeps selling, it only loses brute-force protection until Valkey is back.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from actors.domain.errors import RateLimited

log = logging.getLogger("surge.ratelimit")


class RateLimiter:
    """After a store failure, checks are skipped (allowed) for `retry_s` rather than each request
    waiting out a timeout against a Valkey that is down; one warning per outage, not per request."""

    def __init__(self, redis_url: str | None, limits: dict[str, str], timeout_s: float = 0.5, retry_s: float = 5.0):
        self.items: dict[str, RateLimitItem] = {name: parse(spec) for name, spec in limits.items()}
        self._strategy = None
        self.retry_s = retry_s
        self._down_until = 0.0
        if redis_url:
            storage = RedisStorage(f"async+{redis_url}", implementation="redispy", wrap_exceptions=True,
                                   key_prefix="surge:rl", socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
            self._strategy = MovingWindowRateLimiter(storage)
        self.failed_open = 0  # checks allowed because the store was unreachable

    def item(self, name: str) -> RateLimitItem:
        if name not in self.items:
            raise KeyError(f"no rate limit named {name!r} in settings")
        return self.items[name]

    async def hit(self, name: str, key: str) -> None:
        """Count one request against `name` for `key`; raises RateLimited (429 + Retry-After) past the limit."""
        await self._enforce(name, key, count=True)

    async def check(self, name: str, key: str) -> None:
        """Refuse if `key` is already over the limit, without counting this request (for counting
        failures only, with `hit` after a failure)."""
        await self._enforce(name, key, count=False)

    async def _enforce(self, name: str, key: str, count: bool) -> None:
        item = self.item(name)
        if self._skip():
            return
        try:
            allowed = await (self._strategy.hit if count else self._strategy.test)(item, name, key)
            if allowed:
                return
            retry_after = await self._retry_after(item, name, key)
        except Exception as exc:  # fail open: availability over brute-force protection while Valkey is down
            self._fail_open(name, exc)
            return
        raise RateLimited(retry_after=retry_after, limit=name)

    async def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        stats = await self._strategy.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _skip(self) -> bool:
        if self._strategy is None:
            return True
        if self._down_until and time.monotonic() < self._down_until:
            self.failed_open += 1
            return True
        return False

    def _fail_open(self, name: str, exc: Exception) -> None:
        self.failed_open += 1
        self._down_until = time.monotonic() + self.retry_s
        log.warning("rate limit store unavailable; allowing requests unlimited for %.0fs", self.retry_s,
                    extra={"limit": name, "error": repr(exc)})


# A scope key set by an edge that knows how many proxies stand in front of it (the replica listener: none).
CLIENT_HOPS_KEY = "surge.client_hops"


def client_address(request: Request) -> str:
    """The client's address: the socket peer, or behind `client_hops` trusted proxies that append to
    X-Forwarded-For, the entry they appended (entries further left are whatever the client sent)."""
    peer = request.client.host if request.client else "unknown"
    ctx = getattr(request.app.state, "ctx", None)
    hops = ctx.config.serve.client_hops if ctx is not None and hasattr(ctx, "config") else 0
    hops = request.scope.get(CLIENT_HOPS_KEY, hops)
    return address_from(peer, request.headers.getlist("x-forwarded-for"), hops)


def address_from(peer: str, forwarded_for: list[str], hops: int) -> str:
    if hops <= 0:
        return peer
    chain = [a.strip() for header in forwarded_for for a in header.split(",") if a.strip()]
    if len(chain) < hops:
        return peer  # fewer hops than configured: not through the proxies (or misconfigured)
    return chain[-hops][:64]


def account_key(email: str) -> str:
    """Keys in Valkey carry a digest of the email, not the email itself."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class RateLimit:
    """A dependency: `Depends(RateLimit("search"))` limits a route per client address, with the
    limit named in settings (`SURGE_RATE_LIMITS`)."""

    def __init__(self, name: str):
        self.name = name

    async def __call__(self, request: Request) -> None:
        limiter: RateLimiter = request.app.state.ctx.rate_limiter
        await limiter.hit(self.name, client_address(request))
