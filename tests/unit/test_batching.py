"""The group-commit / coalescing primitive, with no servers."""
import asyncio

import pytest

from actors.batching import Batcher

pytestmark = pytest.mark.unit


async def test_items_arriving_during_a_flush_go_out_together_in_the_next_one():
    gate = asyncio.Event()
    batches: list[list[int]] = []

    async def flush(items):
        batches.append(list(items))
        if len(batches) == 1:
            await gate.wait()
        return [i * 10 for i in items]

    b: Batcher[int, int] = Batcher(flush)
    first = b.submit_nowait(1)
    await asyncio.sleep(0)  # the first flush starts and blocks on the gate
    later = [b.submit_nowait(i) for i in range(2, 7)]
    assert b.queued == 5
    gate.set()
    assert await first == 10
    assert await asyncio.gather(*later) == [20, 30, 40, 50, 60]
    assert batches == [[1], [2, 3, 4, 5, 6]]


async def test_a_caller_is_answered_only_after_its_batch_flushed():
    flushed: list[int] = []
    release = asyncio.Event()

    async def flush(items):
        await release.wait()
        flushed.extend(items)

    b: Batcher[int, None] = Batcher(flush)
    fut = b.submit_nowait(7)
    await asyncio.sleep(0.01)
    assert not fut.done() and flushed == []
    release.set()
    await fut
    assert flushed == [7]


async def test_a_failed_flush_fails_exactly_its_own_callers():
    calls = 0

    async def flush(items):
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.01)
            raise ConnectionError("db down")
        return items

    b: Batcher[str, str] = Batcher(flush)
    a = b.submit_nowait("a")
    await asyncio.sleep(0)
    c = b.submit_nowait("c")
    with pytest.raises(ConnectionError):
        await a
    assert await c == "c"


async def test_fail_queued_rejects_items_not_yet_flushed():
    gate = asyncio.Event()

    async def flush(items):
        await gate.wait()
        return items

    b: Batcher[int, int] = Batcher(flush)
    first = b.submit_nowait(1)
    await asyncio.sleep(0)
    queued = b.submit_nowait(2)
    assert b.fail_queued(RuntimeError("reloaded")) == 1
    gate.set()
    assert await first == 1
    with pytest.raises(RuntimeError, match="reloaded"):
        await queued


async def test_max_batch_splits_a_backlog_in_order():
    seen: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items):
        seen.append(list(items))
        await gate.wait()
        return items

    b: Batcher[int, int] = Batcher(flush, max_batch=2)
    futs = [b.submit_nowait(i) for i in range(5)]
    gate.set()
    assert await asyncio.gather(*futs) == [0, 1, 2, 3, 4]
    assert seen == [[0, 1], [2, 3], [4]]


async def test_a_wrong_result_count_fails_the_batch_instead_of_misanswering():
    async def flush(items):
        return [1]

    b: Batcher[int, int] = Batcher(flush)
    futs = [b.submit_nowait(i) for i in range(3)]
    for f in futs:
        with pytest.raises(RuntimeError, match="3 items"):
            await f
