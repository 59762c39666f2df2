import asyncio

import pytest

from actors.keyed_locks import KeyedLocks

pytestmark = pytest.mark.unit


async def test_one_key_is_held_by_one_caller_at_a_time_and_waiters_go_in_order():
    locks, trace = KeyedLocks(), []

    async def command(name: str):
        async with locks.hold("cart-1"):
            trace.append(f"{name} in")
            await asyncio.sleep(0)  # an await between reading and writing the aggregate
            await asyncio.sleep(0)
            trace.append(f"{name} out")

    await asyncio.gather(command("a"), command("b"), command("c"))
    assert trace == ["a in", "a out", "b in", "b out", "c in", "c out"]


async def test_different_keys_do_not_wait_for_each_other():
    locks = KeyedLocks()
    inside = asyncio.Event()

    async def holder():
        async with locks.hold("cart-1"):
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(holder())
    await inside.wait()
    async with asyncio.timeout(5):
        async with locks.hold("cart-2"):
            pass
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_entry_lives_while_held_or_awaited_and_is_gone_after():
    locks = KeyedLocks()
    release = asyncio.Event()
    entered = []

    async def command(name: str):
        async with locks.hold("order-cart"):
            entered.append(name)
            await release.wait()

    first = asyncio.create_task(command("first"))
    second = asyncio.create_task(command("second"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert entered == ["first"] and len(locks) == 1  # the waiter shares the holder's lock, not a new one
    release.set()
    await asyncio.gather(first, second)
    assert entered == ["first", "second"] and len(locks) == 0


async def test_a_cancelled_waiter_does_not_leave_its_entry_behind():
    locks = KeyedLocks()
    release = asyncio.Event()

    async def holder():
        async with locks.hold("k"):
            await release.wait()

    async def waiter():
        async with locks.hold("k"):
            pass

    h = asyncio.create_task(holder())
    await asyncio.sleep(0)
    w = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    w.cancel()
    with pytest.raises(asyncio.CancelledError):
        await w
    release.set()
    await h
    assert len(locks) == 0
