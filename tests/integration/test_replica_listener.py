"""The replicas' own listener (SURGE_REPLICA_PORT): the same API as Serve's ingress, on one port the
replicas share, with the kernel spreading connections over whoever is bound."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from cluster.embedded import PortInUse, ensure_port_free
from serve_app.replica_listener import ReplicaListener
from tests.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def replica(stack):
    assert stack.urls.replica, "the test stack runs with the replica listener on"
    async with httpx.AsyncClient(base_url=stack.urls.replica, timeout=60, limits=httpx.Limits(max_connections=100)) as client:
        yield client


async def test_stock_sells_exactly_once_across_both_front_doors(api, replica, admin_headers, db):
    sku = f"RL-{uuid.uuid4().hex[:10]}"
    r = await replica.put(f"/admin/inventory/{sku}", json={"on_hand": 300}, headers=admin_headers)
    assert r.status_code == 200, r.text

    async def attempt(i: int) -> httpx.Response:
        door = replica if i % 2 else api
        return await door.post("/inventory/reservations", json={
            "reservation_id": f"{sku}-{i}", "owner": f"cart:{i}", "lines": [{"sku": sku, "quantity": 1}], "ttl_s": 600})

    answers = await asyncio.gather(*(attempt(i) for i in range(1000)))
    codes = [a.status_code for a in answers]
    assert codes.count(201) == 300 and codes.count(409) == 700, sorted(set(codes))
    assert {i % 2 for i, a in enumerate(answers) if a.status_code == 201} == {0, 1}  # both doors sold
    refused = next(a for i, a in enumerate(answers) if i % 2 and a.status_code == 409)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "out_of_stock" and refused.json()["available"] == {sku: 0}
    row = await db.fetchrow("select on_hand, reserved from stock_levels where sku = $1", sku)
    assert (row["on_hand"], row["reserved"]) == (300, 300)


async def test_errors_keep_the_problem_shape_and_every_answer_carries_its_request_id(replica):
    r = await replica.post("/inventory/reservations", json={"owner": "cart:x", "lines": []},
                           headers={"X-Request-ID": "rl-test-1"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"] == "rl-test-1" and r.json()["request_id"] == "rl-test-1"
    r = await replica.get("/no/such/route")
    assert r.status_code == 404 and r.json()["status"] == 404
    assert len(r.headers["x-request-id"]) >= 16


def named(name: str):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": name.encode()})
    return app


async def test_listeners_on_one_port_share_connections_and_a_stopped_one_drops_out():
    port = free_port()
    a, b = (ReplicaListener(named(n), "127.0.0.1", port, request_timeout_s=5) for n in "ab")
    await a.start()
    await b.start()
    try:
        with pytest.raises(PortInUse):  # what `surge up` checks first: a second stack cannot join silently
            ensure_port_free("127.0.0.1", port, "SURGE_REPLICA_PORT")

        async def who() -> str:  # a new connection each time, so the kernel chooses again
            async with httpx.AsyncClient(timeout=5) as c:
                return (await c.get(f"http://127.0.0.1:{port}/")).text

        assert set(await asyncio.gather(*(who() for _ in range(64)))) == {"a", "b"}
        await a.stop()
        assert set(await asyncio.gather(*(who() for _ in range(32)))) == {"b"}  # none refused
    finally:
        await a.stop()
        await b.stop()
    ensure_port_free("127.0.0.1", port, "SURGE_REPLICA_PORT")  # both gone: the port is free again
