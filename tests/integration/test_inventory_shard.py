"""The owner-actor pattern on the real InventoryShard: durable group commit, recovery, concurrency."""
import asyncio
import os
import signal
import uuid

import pytest

from actors.inventory_client import InventoryClient
from actors.routing import shard_for
from tests.conftest import async_wait_for

pytestmark = pytest.mark.integration


def new_sku(prefix="T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def inventory(directory):
    return InventoryClient(directory, soldout_ttl_s=0)


async def test_concurrent_reservations_share_commits_and_each_is_answered_after_commit(inventory, directory, db):
    sku = new_sku()
    await inventory.upsert(sku, on_hand=1000)
    shard = shard_for(sku, inventory.shards)
    before = await directory.call("inventory", shard, "ping")
    outs = await asyncio.gather(*(inventory.reserve(f"r-{sku}-{i}", "cart:t", [(sku, 1)], 60) for i in range(300)))
    assert all(o.held for o in outs)
    after = await directory.call("inventory", shard, "ping")
    # Answered means committed: every acknowledged reservation is already in Postgres.
    held = await db.fetchval("select count(*) from reservation_lines where sku = $1 and state = 'held'", sku)
    assert held == 300
    assert await db.fetchval("select reserved from stock_levels where sku = $1", sku) == 300
    # Group commit: 300 commands went out in far fewer transactions than commands.
    assert after["flushes"] - before["flushes"] < 300 / 3


async def test_two_reservations_racing_for_the_last_unit_exactly_one_wins(inventory):
    sku = new_sku()
    await inventory.upsert(sku, on_hand=1)
    a, b = await asyncio.gather(inventory.reserve(f"a-{sku}", "cart:a", [(sku, 1)], 60),
                                inventory.reserve(f"b-{sku}", "cart:b", [(sku, 1)], 60))
    assert sorted([a.held, b.held]) == [False, True]
    loser = a if not a.held else b
    assert loser.code == "out_of_stock" and loser.available == {sku: 0}


async def test_acknowledged_reservations_survive_kill_9_of_the_owner(inventory, directory, db):
    sku = new_sku("K")
    await inventory.upsert(sku, on_hand=10_000)
    shard = shard_for(sku, inventory.shards)
    pid = (await directory.call("inventory", shard, "ping"))["pid"]
    acked: set[str] = set()
    attempted: list[str] = []

    async def buyer(n: int):
        for i in range(40):
            rid = f"k-{sku}-{n}-{i}"
            attempted.append(rid)
            try:
                out = await inventory.reserve(rid, "cart:k", [(sku, 1)], 300)
            except Exception:
                continue  # not acknowledged: may or may not have committed
            if out.held:
                acked.add(rid)

    async def killer():
        await async_wait_for(lambda: _ready(len(acked) > 50), timeout_s=30, interval_s=0.01, what="some acks")
        os.kill(pid, signal.SIGKILL)

    await asyncio.gather(killer(), *(buyer(n) for n in range(20)))
    assert (await directory.call("inventory", shard, "ping"))["pid"] != pid  # it restarted
    rows = {r["reservation_id"] for r in await db.fetch(
        "select reservation_id from reservation_lines where sku = $1 and state = 'held'", sku)}
    assert acked <= rows, f"{len(acked - rows)} acknowledged reservations were lost"
    # A retry with the same id after the crash is safe: it neither fails nor holds twice.
    for rid in attempted[:200]:
        assert (await inventory.reserve(rid, "cart:k", [(sku, 1)], 300)).held
    level = (await inventory.levels([sku]))[sku]
    held_now = await db.fetchval("select count(*) from reservation_lines where sku = $1 and state = 'held'", sku)
    assert level["reserved"] == held_now == await db.fetchval("select reserved from stock_levels where sku = $1", sku)
    assert await inventory.check_invariants() == []


async def _ready(value):
    return value


async def test_expired_holds_return_stock_exactly_once(inventory, db):
    sku = new_sku("E")
    await inventory.upsert(sku, on_hand=5)
    assert (await inventory.reserve(f"e-{sku}", "cart:e", [(sku, 3)], ttl_s=0.5)).held
    assert (await inventory.levels([sku]))[sku]["available"] == 2

    async def returned():
        lv = (await inventory.levels([sku]))[sku]
        return lv["available"] == 5 and lv
    await async_wait_for(returned, timeout_s=10, what="expiry to return the stock")
    state = await db.fetchval("select state from reservation_lines where reservation_id = $1", f"e-{sku}")
    assert state == "expired"
    moves = await db.fetch("select kind, delta_reserved from stock_movements where sku = $1 and kind = 'expire'", sku)
    assert [(m["kind"], m["delta_reserved"]) for m in moves] == [("expire", -3)]
    assert await db.fetchval("select count(*) from outbox where key = $1 and type = 'ReservationExpired'", f"e-{sku}") == 1


async def test_a_reservation_across_shards_is_all_or_nothing(inventory):
    # find two SKUs owned by different shards
    a = new_sku("A")
    b = next(s for s in (new_sku("B") for _ in range(100)) if shard_for(s, inventory.shards) != shard_for(a, inventory.shards))
    await inventory.upsert(a, on_hand=5)
    await inventory.upsert(b, on_hand=1)
    out = await inventory.reserve(f"m-{a}", "order:m", [(a, 2), (b, 2)], 60)
    assert not out.held and out.code == "out_of_stock"
    levels = await inventory.levels([a, b])
    assert levels[a]["available"] == 5 and levels[b]["available"] == 1  # what shard A held went back
    ok = await inventory.reserve(f"m2-{a}", "order:m", [(a, 2), (b, 1)], 60)
    assert ok.held
    levels = await inventory.levels([a, b])
    assert levels[a]["reserved"] == 2 and levels[b]["reserved"] == 1


async def test_commit_turns_a_hold_into_a_sale_and_is_idempotent(inventory, db):
    sku = new_sku("C")
    await inventory.upsert(sku, on_hand=4)
    rid = f"c-{sku}"
    assert (await inventory.reserve(rid, "order:c", [(sku, 3)], 60)).held
    assert (await inventory.commit(rid, [sku]))["ok"]
    assert (await inventory.commit(rid, [sku]))["ok"]
    lv = (await inventory.levels([sku]))[sku]
    assert (lv["on_hand"], lv["reserved"], lv["sold"], lv["available"]) == (1, 0, 3, 1)
    assert not await inventory.release(rid)  # a sale is not released
    row = await db.fetchrow("select on_hand, sold, received from stock_levels where sku = $1", sku)
    assert row["received"] == row["sold"] + row["on_hand"] == 4
