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
