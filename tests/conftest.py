"""One set of embedded servers and one Ray per test session, started by the same bring-up code as
`surge up` (cluster/local.py), on free loopback ports in a temporary data dir.

Tests marked `lifecycle` start whole `surge up` processes of their own; they run first, before the
shared stack exists, so two Rays never run at once on the 2-core CI box.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cluster.embedded import free_port  # noqa: F401 - tests import it from here

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
PER_ADDRESS_LIMITS = ("signin_address", "register", "reset_address", "search")
DEMO_ADMIN = ("admin@example.com", "admin12345")
DEMO_CUSTOMER = ("customer@example.com", "password123")


def pytest_collection_modifyitems(config, items):
    # lifecycle first (before the shared stack exists); fuzz last (generated admin requests may change
    # any shared row, the demo data included, so nothing runs after them on the same stack)
    def order(item) -> int:
        if item.get_closest_marker("lifecycle"):
            return 0
        return 2 if item.get_closest_marker("fuzz") else 1
    items.sort(key=order)


def wait_for(predicate: Callable[[], object], timeout_s: float = 30, interval_s: float = 0.1, what: str = "condition"):
    """Poll until `predicate()` is truthy (returning it), or fail after `timeout_s`. No bare sleeps in tests."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


async def async_wait_for(predicate, timeout_s: float = 30, interval_s: float = 0.1, what: str = "condition"):
    import asyncio

    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def restart_owner(directory, kind: str, index: int, timeout_s: float = 60) -> None:
    """Kill an owner actor's process (Ray restarts it: max_restarts=-1) and wait for the new one, which
    has loaded its slice from Postgres again."""
    import ray

    before = (await directory.call(kind, index, "ping"))["pid"]
    ray.kill(directory.handle(kind, index), no_restart=False)

    async def restarted():
        try:
            return (await directory.call(kind, index, "ping"))["pid"] != before
        except Exception:  # noqa: BLE001 - still restarting
            return False
    await async_wait_for(restarted, timeout_s=timeout_s, what=f"a new {kind} owner process")


@pytest.fixture
def server_dir():
    """A data dir for embedded servers. Not under pytest's tmp root: pytest keeps that 0700, and the
    embedded Postgres runs as its own system user, which must be able to reach its data."""
    path = Path(tempfile.mkdtemp(prefix="surge-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    from actors.settings import ActorSettings
    from cluster.local import LocalStack
    from cluster.settings import SurgeSettings
    from serve_app.settings import ServeSettings
    from storage.settings import StorageSettings

    data_dir = Path(tempfile.mkdtemp(prefix="surge-test-stack-"))
    surge = SurgeSettings(data_dir=data_dir, pg_port=free_port(), valkey_port=free_port(), stripe_port=free_port(),
                          hub_port=free_port(), ray_address=None, stripe_api_base=None, log_level="INFO")
    serve = ServeSettings(http_port=free_port(), admin_token=ADMIN_TOKEN, haproxy_stats_port=free_port(),
                          haproxy_metrics_port=free_port(), fallback_proxy_port=free_port(), fallback_grpc_port=free_port(),
                          replica_port=free_port(),  # the replicas' own listener, beside Serve's ingress
                          ingress=os.environ.get("SURGE_TEST_INGRESS", ServeSettings().ingress),
                          # every test client is 127.0.0.1: per-address limits would make tests depend on each other
                          rate_limits={name: "100000/minute" for name in PER_ADDRESS_LIMITS})
    s = LocalStack(surge, StorageSettings(database_url=None, redis_url=None), serve,
                   ActorSettings(inventory_shards=2, outbox_prune_every_s=0.5), say=lambda m: None)
    s.start(ready_timeout_s=120)
    yield s
    s.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def directory(stack):
    from actors.directory import ActorDirectory, OwnerConfig

    return ActorDirectory(OwnerConfig(database_url=stack.urls.database, redis_url=stack.urls.redis, settings=stack.actors))


@pytest.fixture
async def api(stack):
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=30) as client:
        yield client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def db(stack):
    from storage.pool import create_pool

    pool = await create_pool(stack.urls.database, max_size=4)
    yield pool
    await pool.close()


@dataclass(frozen=True)
class Customer:
    email: str
    password: str
    user_id: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def sign_in(base_url: str, email: str, password: str) -> dict:
    """The OAuth2 password flow: {"access_token", "refresh_token", ...}."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.post("/auth/token", data={"username": email, "password": password})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def make_customer(stack):
    """`await make_customer()` registers a fresh customer through the API (a unique email; the stack
    is shared by the whole session) and signs in: a `Customer` with email, password, user_id,
    tokens and `.headers` (Authorization: Bearer)."""

    async def make(name: str = "Test Customer", password: str | None = None) -> Customer:
        return await register_customer(stack.urls.api, name, password)

    return make


async def register_customer(base_url: str, name: str = "Test Customer", password: str | None = None) -> Customer:
    """What `make_customer` does, for fixtures of a wider scope."""
    email = f"c-{uuid.uuid4().hex[:12]}@example.test"
    password = password or f"pw-{uuid.uuid4().hex[:12]}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.post("/auth/register", json={"email": email, "password": password, "name": name})
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
    tokens = await sign_in(base_url, email, password)
    return Customer(email, password, user_id, tokens["access_token"], tokens["refresh_token"])


@pytest.fixture
async def admin_user_headers(stack) -> dict[str, str]:
    """The demo admin (admin@example.com), signed in: Authorization: Bearer <access JWT>."""
    tokens = await sign_in(stack.urls.api, *DEMO_ADMIN)
    return {"Authorization": f"Bearer {tokens['access_token']}"}
