"""Read-through cache for product pages and listings in Valkey, invalidated by version keys.

A cached value's key embeds the current number of every version key it depends on
(`surge:cver:product:<slug>`, `surge:cver:listings`). Invalidation is one `INCR`: readers move to
new keys at once and the old entries expire by TTL. Nothing ever enumerates keys (no KEYS/SCAN).

Ordering: a reader reads the versions *before* it reads PostgreSQL, and a version is bumped only
after the change committed (it is driven by the outbox), so whoever sees the new version also sees
the new rows. A reader that raced the bump may store old rows under the old version: no one reads
them again.

One round trip per read: a server-side script reads the versions, builds the key exactly as
`cache_key` does and returns it with its value (a standalone Valkey/Redis: on a cluster the version
keys and the value's key would live in different slots). A hit can be handed on as the JSON bytes
stored (`read_through_json`), never parsed and re-encoded.

Outage: any cache error makes the read go straight to PostgreSQL, and the cache is left alone for
`retry_after_s` so a dead Valkey costs one failed attempt per interval, not one per request.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import redis.exceptions

log = logging.getLogger("surge.cache")

PREFIX = "surge:c:"
LISTINGS_VERSION = "surge:cver:listings"
_CACHE_ERRORS = (redis.exceptions.RedisError, OSError, TimeoutError)


def product_version_key(slug: str) -> str:
    return f"surge:cver:product:{slug}"


def cache_key(kind: str, parts: Sequence[Any], versions: Sequence[bytes | str | int | None]) -> str:
    """`surge:c:<kind>:<v1>.<v2>…:<digest of parts>`; a missing version counts as 0 (pure)."""
    vs = ".".join(str(int(v)) if v is not None else "0" for v in versions)
    return f"{PREFIX}{kind}:{vs}:{parts_digest(parts)}"


def parts_digest(parts: Sequence[Any]) -> str:
    return hashlib.blake2b(json.dumps(list(parts), default=str, separators=(",", ":")).encode(),
                           digest_size=12).hexdigest()


def to_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# KEYS: the version keys; ARGV: the key's text before and after the versions. Returns {key, value}.
# Versions are written only by INCR, so a stored version's text is the str(int(v)) of cache_key.
LOOKUP_SCRIPT = """
local versions = {}
for i, k in ipairs(KEYS) do
    versions[i] = redis.call('GET', k) or '0'
end
local key = ARGV[1] .. table.concat(versions, '.') .. ARGV[2]
return {key, redis.call('GET', key)}
"""


class CatalogCache:
    def __init__(self, redis, ttl_s: int = 300, retry_after_s: float = 5.0,
                 observer: Callable[[str, str], None] | None = None):
        self.redis = redis
        self.ttl_s = ttl_s
        self.retry_after_s = retry_after_s
        self.observer = observer  # (kind, "hit" | "miss" | "bypass"): the API counts them as a metric
        self._down_until = 0.0
        self._lookup = redis.register_script(LOOKUP_SCRIPT) if redis is not None else None

    @property
    def available(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_after_s
        log.warning("catalog cache unavailable; reading through to the database", extra={"error": repr(exc)})

    async def read_through(self, kind: str, parts: Sequence[Any], version_keys: Sequence[str],
                           load: Callable[[], Awaitable[Any]], ttl_s: int | None = None) -> tuple[Any, str]:
        """The value and how it was found: 'hit', 'miss' (loaded and stored) or 'bypass' (cache down).
        `load()` returns a JSON-able value; None is returned as is and never cached."""
        stored, value, how = await self._read(kind, parts, version_keys, load, ttl_s)
        return (json.loads(stored) if how == "hit" else value), how

    async def read_through_json(self, kind: str, parts: Sequence[Any], version_keys: Sequence[str],
                                load: Callable[[], Awaitable[Any]], ttl_s: int | None = None) -> tuple[bytes | None, str]:
        """As `read_through`, but the value as JSON bytes (None for None): a hit is the stored bytes,
        a miss is encoded once, for the cache and the caller alike."""
        stored, value, how = await self._read(kind, parts, version_keys, load, ttl_s)
        if stored is None and value is not None:  # bypass
            stored = to_json(value)
        return stored, how

    async def _read(self, kind, parts, version_keys, load, ttl_s) -> tuple[bytes | None, Any, str]:
        """(the JSON bytes stored or to store, the loaded value if loaded, how)"""
        stored, value, how = await self._read_once(kind, parts, version_keys, load, ttl_s)
        if self.observer is not None:
            self.observer(kind, how)
        return stored, value, how

    async def _read_once(self, kind, parts, version_keys, load, ttl_s):
        if not self.available:
            return None, await load(), "bypass"
        try:
            key, stored = await self._lookup(keys=list(version_keys),
                                             args=[f"{PREFIX}{kind}:", f":{parts_digest(parts)}"])
        except _CACHE_ERRORS as exc:
            self._failed(exc)
            return None, await load(), "bypass"
        if stored is not None:
            return stored, None, "hit"
        value = await load()
        if value is None:
            return None, None, "miss"
        stored = to_json(value)
        try:
            await self.redis.set(key, stored, ex=ttl_s or self.ttl_s)
        except _CACHE_ERRORS as exc:
            self._failed(exc)
        return stored, value, "miss"

    async def bump(self, version_keys: Iterable[str]) -> None:
        """Invalidate everything that depends on these version keys. Raises on a cache error: the
        caller (the event consumer) retries, so an invalidation is never silently lost."""
        keys = list(dict.fromkeys(version_keys))
        if not keys:
            return
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.incr(k)
        await pipe.execute()
