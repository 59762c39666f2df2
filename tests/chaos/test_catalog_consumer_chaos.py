"""Chaos: kill -9 the catalog event consumer. Ray restarts it (empty memory, constructor re-run); its
Valkey consumer group still knows what it acknowledged, so a product change made while it was dead
still invalidates the cached page once it is back."""
import os
import signal

import pytest

from tests.conftest import async_wait_for
from tests.integration.catalog_helpers import make_product
from tests.integration.test_catalog import cached_page

pytestmark = pytest.mark.chaos


async def test_invalidation_resumes_after_the_consumer_is_killed(api, admin_headers, directory):
    p = await make_product(api, admin_headers, name="Chaos Kettle")
    await async_wait_for(lambda: cached_page(api, p["slug"]), what="a cache hit")
    before = (await directory.call("catalog", 0, "ping"))["pid"]
    os.kill(before, signal.SIGKILL)
    r = await api.patch(f"/admin/products/{p['id']}", headers=admin_headers, json={"name": "Chaos Kettle II"})
    assert r.status_code == 200

    async def fresh():
        return (await api.get(f"/products/{p['slug']}")).json()["name"] == "Chaos Kettle II"
    await async_wait_for(fresh, timeout_s=60, what="the restarted consumer to invalidate the page")
    after = await directory.call("catalog", 0, "ping")
    assert after["pid"] != before and after["ready"]
