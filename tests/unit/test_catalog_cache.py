"""The read-through cache's rules with an in-memory stand-in for Valkey: hits, misses, version bumps,
and an outage that sends reads to the loader (and leaves the cache alone for a while)."""
from __future__ import annotations

import json

import pytest
import redis.exceptions

from storage.catalog_cache import CatalogCache

pytestmark = pytest.mark.unit


class FakeRedis:
    def __init__(self):
        self.data: dict[str, bytes] = {}
        self.down = False
        self.calls = 0

    def _check(self):
        self.calls += 1
        if self.down:
            raise redis.exceptions.ConnectionError("down")

    async def mget(self, keys):
        self._check()
        return [self.data.get(k) for k in keys]

    async def get(self, key):
        self._check()
        return self.data.get(key)

    async def set(self, key, value, ex=None):
        self._check()
        self.data[key.decode() if isinstance(key, bytes) else key] = value if isinstance(value, bytes) else value.encode()

    def register_script(self, lua):
        """What LOOKUP_SCRIPT means (Valkey runs the real one in the integration tests)."""
        async def lookup(keys, args):
            self._check()
            key = args[0] + ".".join(self.data.get(k, b"0").decode() for k in keys) + args[1]
            return [key.encode(), self.data.get(key)]

        return lookup

    def pipeline(self, transaction=False):
        fake = self

        class Pipe:
            def __init__(self):
                self.keys = []

            def incr(self, key):
                self.keys.append(key)

            async def execute(self):
                fake._check()
                for k in self.keys:
                    fake.data[k] = str(int(fake.data.get(k, b"0")) + 1).encode()

        return Pipe()


async def test_miss_then_hit_then_a_bump_reloads():
    seen = []
    cache = CatalogCache(FakeRedis(), observer=lambda kind, how: seen.append(how))
    loads = []

    async def load():
        loads.append(1)
        return {"n": len(loads)}

    assert await cache.read_through("page", ["a"], ["v:a"], load) == ({"n": 1}, "miss")
    assert await cache.read_through("page", ["a"], ["v:a"], load) == ({"n": 1}, "hit")
    await cache.bump(["v:a"])
    assert await cache.read_through("page", ["a"], ["v:a"], load) == ({"n": 2}, "miss")
    assert await cache.read_through("page", ["b"], ["v:a"], load) == ({"n": 3}, "miss")  # other parts, other key
    assert seen == ["miss", "hit", "miss", "miss"]


async def test_none_is_never_cached():
    cache = CatalogCache(FakeRedis())

    async def load():
        return None

    assert await cache.read_through("page", ["x"], ["v:x"], load) == (None, "miss")
    assert await cache.read_through("page", ["x"], ["v:x"], load) == (None, "miss")


async def test_an_outage_answers_from_the_loader_and_backs_off():
    fake = FakeRedis()
    cache = CatalogCache(fake, retry_after_s=60)

    async def load():
        return {"fresh": True}

    fake.down = True
    assert await cache.read_through("page", ["a"], ["v:a"], load) == ({"fresh": True}, "bypass")
    calls = fake.calls
    assert await cache.read_through("page", ["a"], ["v:a"], load) == ({"fresh": True}, "bypass")
    assert fake.calls == calls  # not retried within the back-off window
    with pytest.raises(redis.exceptions.ConnectionError):
        await cache.bump(["v:a"])  # an invalidation is never silently dropped: the consumer retries


async def test_json_reads_hand_on_the_stored_bytes_and_encode_a_miss_once():
    fake = FakeRedis()
    cache = CatalogCache(fake, retry_after_s=60)

    async def load():
        return {"name": "Lamp", "n": 1}

    miss, how = await cache.read_through_json("search", ["q"], ["v:l"], load)
    assert how == "miss" and json.loads(miss) == {"name": "Lamp", "n": 1}
    assert list(fake.data.values()) == [miss]  # stored as answered
    fake.data[next(iter(fake.data))] = b'{"stored":true}'
    assert await cache.read_through_json("search", ["q"], ["v:l"], load) == (b'{"stored":true}', "hit")

    async def nothing():
        return None

    assert await cache.read_through_json("search", ["none"], ["v:l"], nothing) == (None, "miss")
    fake.down = True
    bypass, how = await cache.read_through_json("search", ["q"], ["v:l"], load)
    assert how == "bypass" and json.loads(bypass) == {"name": "Lamp", "n": 1}
