"""The replica's copy of flash-sale SKUs: a crowd arriving at a stale copy costs one query."""
import asyncio

import pytest

from serve_app.context import FlashSkus

pytestmark = pytest.mark.unit


class CountingPool:
    def __init__(self):
        self.queries = 0

    async def fetch(self, _sql):
        self.queries += 1
        await asyncio.sleep(0.01)  # the query is in flight while the crowd arrives
        return [{"sku": "FLASH-1"}]


async def test_a_crowd_on_a_stale_copy_shares_one_query_and_all_see_its_answer():
    pool = CountingPool()
    skus = FlashSkus(pool, max_age_s=60)
    answers = await asyncio.gather(*(skus.contains(s) for s in ["FLASH-1"] * 50 + ["OTHER"]))
    assert pool.queries == 1
    assert answers == [True] * 50 + [False]
    assert await skus.contains("FLASH-1") and pool.queries == 1  # fresh copy: no query


class FailingAfterFirstPool(CountingPool):
    async def fetch(self, sql):
        rows = await super().fetch(sql)
        if self.queries > 1:
            raise ConnectionError("database down")
        return rows


async def test_a_stale_copy_answers_at_once_and_survives_a_failed_refresh():
    pool = FailingAfterFirstPool()
    skus = FlashSkus(pool, max_age_s=0)  # every call finds the copy stale
    assert await skus.contains("FLASH-1") and pool.queries == 1
    assert await skus.contains("FLASH-1")  # answered from the old copy; the refresh runs behind it
    await asyncio.sleep(0.05)  # let the background refresh fail
    assert pool.queries == 2 and await skus.contains("FLASH-1")


async def test_the_first_load_failing_is_the_callers_error_and_the_next_call_retries():
    class DownThenUp(CountingPool):
        async def fetch(self, sql):
            rows = await super().fetch(sql)
            if self.queries == 1:
                raise ConnectionError("database down")
            return rows

    pool = DownThenUp()
    skus = FlashSkus(pool, max_age_s=60)
    with pytest.raises(ConnectionError):
        await skus.contains("FLASH-1")
    assert await skus.contains("FLASH-1") and pool.queries == 2
