"""Rate limits in the session's real Valkey: per client address through the reusable `RateLimit`
dependency, 429 problem+json with Retry-After, and failing open when Valkey is unreachable."""
from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import httpx
import pytest
from fastapi import Depends, FastAPI

from serve_app.errors import install_error_handlers
from serve_app.ratelimit import RateLimit, RateLimiter
from tests.conftest import free_port

pytestmark = pytest.mark.integration


PROBE_LIMIT = "3/minute"


def probe_app(limiter: RateLimiter, name: str) -> FastAPI:
    app = FastAPI()
    app.state.ctx = SimpleNamespace(rate_limiter=limiter)
    install_error_handlers(app)

    @app.get("/probe", dependencies=[Depends(RateLimit(name))])
    async def probe() -> dict:
        return {"ok": True}

    return app


def client_from(app: FastAPI, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)), base_url="http://t")


async def test_a_route_limit_applies_per_client_address_with_429_and_retry_after(stack):
    name = f"probe-{uuid.uuid4().hex[:8]}"  # a fresh limit: the Valkey is shared by the session
    app = probe_app(RateLimiter(stack.urls.redis, {name: PROBE_LIMIT}), name)
    async with client_from(app, "10.0.0.1") as one, client_from(app, "10.0.0.2") as two:
        codes = [(await one.get("/probe")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = await one.get("/probe")
        assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "rate_limited" and 1 <= int(r.headers["retry-after"]) <= 60
        assert (await two.get("/probe")).status_code == 200  # another address has its own budget


async def test_limits_are_shared_by_replicas_through_valkey(stack):
    name = f"probe-{uuid.uuid4().hex[:8]}"
    replica_1 = probe_app(RateLimiter(stack.urls.redis, {name: PROBE_LIMIT}), name)
    replica_2 = probe_app(RateLimiter(stack.urls.redis, {name: PROBE_LIMIT}), name)
    async with client_from(replica_1, "10.0.0.3") as via_1, client_from(replica_2, "10.0.0.3") as via_2:
        assert [(await via_1.get("/probe")).status_code for _ in range(3)] == [200, 200, 200]
        assert (await via_2.get("/probe")).status_code == 429


async def test_with_valkey_down_the_limiter_fails_open_and_says_so_once(caplog):
    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}", {"probe-down": PROBE_LIMIT})  # nothing listens there
    attempts = 0
    real_hit = limiter._strategy.hit

    async def counting_hit(*args, **kwargs):
        nonlocal attempts
        attempts += 1
        return await real_hit(*args, **kwargs)

    limiter._strategy.hit = counting_hit
    app = probe_app(limiter, "probe-down")
    with caplog.at_level(logging.WARNING, logger="surge.ratelimit"):
        async with client_from(app, "10.0.0.4") as client:
            codes = [(await client.get("/probe")).status_code for _ in range(5)]
    assert codes == [200] * 5 and limiter.failed_open == 5
    # one attempt on the store, then the outage is remembered instead of re-tried per request
    assert attempts == 1
    warnings = [rec for rec in caplog.records if "rate limit store unavailable" in rec.getMessage()]
    assert len(warnings) == 1


async def test_after_the_retry_window_the_limiter_tries_the_store_again(stack):
    limiter = RateLimiter(stack.urls.redis, {"back": "1/minute"}, retry_s=0.0)
    limiter._down_until = 1.0  # an outage that ended long ago (monotonic clock)
    key = uuid.uuid4().hex
    await limiter.hit("back", key)
    from actors.domain.errors import RateLimited

    with pytest.raises(RateLimited):
        await limiter.hit("back", key)


async def test_check_refuses_without_counting_and_hit_counts(stack):
    limiter = RateLimiter(stack.urls.redis, {"fails": "2/minute"})
    key = uuid.uuid4().hex
    for _ in range(5):
        await limiter.check("fails", key)  # checking alone never uses the budget
    await limiter.hit("fails", key)
    await limiter.hit("fails", key)
    from actors.domain.errors import RateLimited

    with pytest.raises(RateLimited) as refused:
        await limiter.check("fails", key)
    assert refused.value.context["retry_after"] >= 1
    await limiter.check("fails", uuid.uuid4().hex)  # another key is untouched


async def assert_counted_as_the_peer_whatever_it_forwards(redis_url: str, client: httpx.AsyncClient) -> None:
    """A failed sign-in with a spoofed X-Forwarded-For is counted under 127.0.0.1, never the spoof."""
    import redis.asyncio as aioredis

    spoofed = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    r = await client.post("/auth/token", data={"username": f"x-{uuid.uuid4().hex[:8]}@example.test", "password": "pw"},
                          headers={"X-Forwarded-For": spoofed})
    assert r.status_code == 401
    store = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k.decode() async for k in store.scan_iter(match="*signin_address*")]
    finally:
        await store.aclose()
    assert any("127.0.0.1" in k for k in keys), keys
    assert not any(spoofed in k for k in keys), keys


async def test_through_the_ingress_a_client_cannot_choose_the_address_it_is_counted_under(stack, api):
    """Serve's HAProxy appends the real peer to X-Forwarded-For (cluster/haproxy-loopback.sh), and the
    API counts that hop, not what the client wrote."""
    if stack.serve.client_hops != 1:
        pytest.skip("only meaningful behind Serve's HAProxy ingress")
    await assert_counted_as_the_peer_whatever_it_forwards(stack.urls.redis, api)


async def test_through_the_replica_listener_forwarded_for_is_the_clients_own_text(stack):
    """No proxy stands in front of SURGE_REPLICA_PORT: the socket peer counts, whatever the app's hops."""
    async with httpx.AsyncClient(base_url=stack.urls.replica, timeout=30) as replica:
        await assert_counted_as_the_peer_whatever_it_forwards(stack.urls.redis, replica)
