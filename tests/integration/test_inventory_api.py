"""The inventory HTTP API and the audit, against the shared stack."""
import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

SURGE = str(Path(sys.executable).parent / "surge")


async def make_sku(api, admin_headers, on_hand: int, **settings) -> str:
    sku = f"H-{uuid.uuid4().hex[:10]}"
    r = await api.put(f"/admin/inventory/{sku}", json={"on_hand": on_hand, **settings}, headers=admin_headers)
    assert r.status_code == 200, r.text
    return sku


async def test_2000_concurrent_attempts_on_500_units_sell_exactly_500(stack, admin_headers, db):
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=60,
                                 limits=httpx.Limits(max_connections=200)) as api:
        sku = await make_sku(api, admin_headers, 500)

        async def attempt(i: int) -> int:
            r = await api.post("/inventory/reservations", json={
                "reservation_id": f"{sku}-{i}", "owner": f"cart:{i}", "lines": [{"sku": sku, "quantity": 1}], "ttl_s": 600})
            assert r.status_code in (201, 409), r.text
            return r.status_code

        codes = await asyncio.gather(*(attempt(i) for i in range(2000)))
    assert codes.count(201) == 500 and codes.count(409) == 1500
    row = await db.fetchrow("select on_hand, reserved from stock_levels where sku = $1", sku)
    assert (row["on_hand"], row["reserved"]) == (500, 500)
    assert await db.fetchval("select count(*) from reservation_lines where sku = $1 and state = 'held'", sku) == 500


async def test_sold_out_is_a_409_problem_with_the_available_quantity(api, admin_headers):
    sku = await make_sku(api, admin_headers, 2)
    r = await api.post("/inventory/reservations", json={"owner": "cart:s", "lines": [{"sku": sku, "quantity": 3}]})
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "out_of_stock" and body["available"] == {sku: 2}


async def test_levels_for_many_skus_at_once(api, admin_headers):
    a = await make_sku(api, admin_headers, 3)
    b = await make_sku(api, admin_headers, 7)
    r = await api.get("/inventory/levels", params=[("sku", a), ("sku", b), ("sku", "NOPE-404")])
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {a, b} and body[a]["available"] == 3 and body[b]["available"] == 7


async def test_release_returns_stock_and_is_idempotent(api, admin_headers):
    sku = await make_sku(api, admin_headers, 5)
    r = await api.post("/inventory/reservations", json={"reservation_id": f"rel-{sku}", "owner": "cart:r",
                                                        "lines": [{"sku": sku, "quantity": 4}]})
    assert r.status_code == 201 and r.json()["available"] == {sku: 1}
    for _ in range(2):
        assert (await api.delete(f"/inventory/reservations/rel-{sku}")).status_code == 204
    assert (await api.get("/inventory/levels", params={"sku": sku})).json()[sku]["available"] == 5


async def test_per_customer_cap_holds_across_carts(api, admin_headers):
    sku = await make_sku(api, admin_headers, 50, per_customer_cap=2)
    first = await api.post("/inventory/reservations", json={"owner": "cart:1", "customer_id": "cust-1",
                                                            "lines": [{"sku": sku, "quantity": 2}]})
    assert first.status_code == 201
    second = await api.post("/inventory/reservations", json={"owner": "order:9", "customer_id": "cust-1",
                                                             "lines": [{"sku": sku, "quantity": 1}]})
    assert second.status_code == 409 and second.json()["code"] == "cap_exceeded"
    other = await api.post("/inventory/reservations", json={"owner": "cart:2", "customer_id": "cust-2",
                                                            "lines": [{"sku": sku, "quantity": 2}]})
    assert other.status_code == 201


async def test_adjust_records_a_movement_and_a_write_off_cannot_take_held_units(api, admin_headers):
    sku = await make_sku(api, admin_headers, 10, low_stock_threshold=3)
    await api.post("/inventory/reservations", json={"owner": "cart:a", "lines": [{"sku": sku, "quantity": 8}]})
    r = await api.post(f"/admin/inventory/{sku}/adjust", json={"delta": -5, "reason": "damaged"}, headers=admin_headers)
    assert r.status_code == 409 and r.json()["available"] == 2
    r = await api.post(f"/admin/inventory/{sku}/adjust", json={"delta": 20, "reason": "delivery 42"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["on_hand"] == 30 and r.json()["received"] == 30
    moves = (await api.get(f"/admin/inventory/{sku}/movements", headers=admin_headers)).json()
    assert moves[0]["kind"] == "adjust" and moves[0]["delta_on_hand"] == 20 and moves[0]["reason"] == "delivery 42"
    assert {m["kind"] for m in moves} >= {"adjust", "reserve"}


async def test_an_adjustment_with_an_idempotency_key_is_applied_once_however_often_it_is_sent(api, admin_headers, db):
    sku = await make_sku(api, admin_headers, 10)
    key = {"Idempotency-Key": f"restock-{uuid.uuid4().hex}", **admin_headers}
    body = {"delta": 5, "reason": "delivery 7"}
    first = await api.post(f"/admin/inventory/{sku}/adjust", json=body, headers=key)
    assert first.status_code == 200 and first.json()["on_hand"] == 15
    assert "idempotent-replayed" not in first.headers
    # a retry, and ten concurrent ones (a client that timed out and a retrying proxy), add nothing
    again = await api.post(f"/admin/inventory/{sku}/adjust", json=body, headers=key)
    assert again.status_code == 200 and again.json()["on_hand"] == 15 and again.headers["idempotent-replayed"] == "true"
    burst = await asyncio.gather(*(api.post(f"/admin/inventory/{sku}/adjust", json=body, headers=key) for _ in range(10)))
    assert {r.status_code for r in burst} == {200} and {r.json()["on_hand"] for r in burst} == {15}
    assert await db.fetchval("select count(*) from stock_movements where sku = $1 and kind = 'adjust' and reason = $2", sku,
                             "delivery 7") == 1  # the other adjust row is the initial stock
    moves = (await api.get(f"/admin/inventory/{sku}/movements", headers=admin_headers)).json()
    assert moves[0]["adjustment_id"] == key["Idempotency-Key"]
    # the same key for another change is refused, and changes nothing
    other = await api.post(f"/admin/inventory/{sku}/adjust", json={"delta": 6, "reason": "delivery 7"}, headers=key)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert (await api.get("/inventory/levels", params={"sku": sku})).json()[sku]["on_hand"] == 15
    # without a key every request is a new adjustment
    for _ in range(2):
        assert (await api.post(f"/admin/inventory/{sku}/adjust", json=body, headers=admin_headers)).status_code == 200
    assert (await api.get("/inventory/levels", params={"sku": sku})).json()[sku]["on_hand"] == 25


async def test_an_adjustment_retried_after_its_owner_restarted_is_not_applied_again(api, admin_headers, directory):
    """The key is checked against what was committed, not only against the owner's memory."""
    from actors.routing import shard_for
    from tests.conftest import restart_owner

    sku = await make_sku(api, admin_headers, 10)
    key = {"Idempotency-Key": f"restock-{uuid.uuid4().hex}", **admin_headers}
    assert (await api.post(f"/admin/inventory/{sku}/adjust", json={"delta": 3, "reason": "r"}, headers=key)).status_code == 200
    await restart_owner(directory, "inventory", shard_for(sku, directory.shard_count("inventory")))
    again = await api.post(f"/admin/inventory/{sku}/adjust", json={"delta": 3, "reason": "r"}, headers=key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true" and again.json()["on_hand"] == 13


async def test_low_stock_lists_skus_at_or_under_their_threshold(api, admin_headers):
    sku = await make_sku(api, admin_headers, 4, low_stock_threshold=5)
    low = (await api.get("/admin/inventory/low-stock", headers=admin_headers)).json()
    assert sku in {lv["sku"] for lv in low}


async def test_surge_audit_is_clean_then_names_a_corrupted_sku(stack, db):
    env = {**os.environ, "DATABASE_URL": stack.urls.database}
    clean = subprocess.run([SURGE, "audit"], env=env, capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # a row no owner has loaded, oversold on purpose
    sku = f"CORRUPT-{uuid.uuid4().hex[:6]}"
    await db.execute("alter table stock_levels drop constraint available_not_negative")
    try:
        await db.execute("insert into stock_levels (sku, on_hand, reserved, received) values ($1, 1, 3, 1)", sku)
        bad = subprocess.run([SURGE, "audit"], env=env, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1
        assert f"{sku}: oversold" in bad.stderr and f"{sku}: reserved mismatch" in bad.stderr
    finally:
        await db.execute("delete from stock_levels where sku = $1", sku)
        await db.execute("alter table stock_levels add constraint available_not_negative check (on_hand - reserved >= 0)")


async def test_the_database_itself_refuses_negative_availability(db):
    with pytest.raises(Exception, match="available_not_negative"):
        await db.execute("insert into stock_levels (sku, on_hand, reserved, received) values ('NEG-1', 1, 2, 1)")


async def test_a_request_id_follows_the_request_into_the_owner_actors_logs(api, admin_headers):
    from ray._private.worker import global_worker  # test-only: where this session's Ray writes its logs

    from tests.conftest import async_wait_for

    sku = await make_sku(api, admin_headers, 5)
    rid = f"trace-{uuid.uuid4().hex}"
    r = await api.post("/inventory/reservations", headers={"X-Request-ID": rid},
                       json={"owner": "cart:trace", "lines": [{"sku": sku, "quantity": 1}]})
    assert r.status_code == 201 and r.headers["x-request-id"] == rid
    logs = Path(global_worker.node.get_session_dir_path()) / "logs"

    async def logged():
        for f in logs.glob("worker-*"):
            text = f.read_text(errors="replace")
            if rid in text:
                return [line for line in text.splitlines() if rid in line]
        return None

    lines = await async_wait_for(logged, timeout_s=30, interval_s=0.5, what="the request id in an actor's log")
    assert any('"reserve batch"' in line and '"logger": "surge.inventory"' in line for line in lines), lines
