"""CatalogEventConsumer: turns committed catalog and stock events into cache invalidations and
search-index updates.

Where it runs, and why: one small named, detached, restartable actor (kind "catalog" in the
directory), not a task in every API replica. The cache's version keys live in Valkey and are shared
by all replicas, so one `INCR` per change serves all of them; N replica tasks would bump N times and,
with Elasticsearch, index every product N times. Its position lives in a Valkey consumer group, so a
restarted actor (empty memory, constructor re-run) resumes after the last acknowledged entry and
re-reads what it had not acknowledged. Handling is idempotent in effect (a repeated bump costs one
cache miss; indexing a product twice writes the same document), which is what at-least-once needs.

It reads `surge:events:catalog` (product created/updated/archived, rating changes, categories) and
`surge:events:inventory`, where it acts only on `SoldOut` / `BackInStock`: the flips that change
what a page or listing shows. Ordinary stock ticks are skipped (live counts travel through the hub).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os

from actors.directory import OwnerConfig
from actors.process import configure_owner_process
from storage import catalog_store
from storage.cache import create_redis
from storage.catalog_cache import LISTINGS_VERSION, CatalogCache, product_version_key
from storage.outbox import stream_name
from storage.pool import close_quietly, create_pool
from storage.search import create_backend
from storage.search.postgres import compact_facet_cells

log = logging.getLogger("surge.catalog_events")

GROUP = "catalog-cache"
STREAMS = ("catalog", "inventory")
FLIPS = ("SoldOut", "BackInStock")
BATCH = 500


def invalidations(entries: list[tuple[str, dict]]) -> tuple[set[str], set[str], set[int]]:
    """From (topic, fields) stream entries: (slugs whose pages change, SKUs that flipped, product ids
    to re-index). Pure, so the rules are unit-tested."""
    slugs: set[str] = set()
    skus: set[str] = set()
    ids: set[int] = set()
    for topic, fields in entries:
        type_ = fields.get("type", "")
        if topic == "inventory":
            if type_ in FLIPS:
                skus.add(fields.get("key", ""))
            continue
        try:
            payload = json.loads(fields.get("payload") or "{}")
        except ValueError:
            continue
        for k in ("slug", "old_slug"):
            if payload.get(k):
                slugs.add(payload[k])
        if payload.get("product_id") is not None:
            ids.add(int(payload["product_id"]))
    skus.discard("")
    return slugs, skus, ids


def _decode(fields: dict) -> dict:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()}


class CatalogEventHandler:
    """What one batch of stream entries does: re-index the products it names, fold the listing
    facet deltas (migration 0007) into their cells, then bump the version keys of their pages and
    of the listings (index first, so whoever sees the new version finds the new document)."""

    def __init__(self, pool, cache: CatalogCache, backend):
        self.pool, self.cache, self.backend = pool, cache, backend

    async def handle(self, entries: list[tuple[str, dict]]) -> list[str]:
        """`entries`: (stream name, decoded fields). Returns the version keys bumped."""
        slugs, skus, ids = invalidations([(name.rsplit(":", 1)[-1], fields) for name, fields in entries])
        if skus:
            async with self.pool.acquire() as conn:
                for pid, slug in await catalog_store.products_for_skus(conn, skus):
                    slugs.add(slug)
                    ids.add(pid)
        keys = [product_version_key(s) for s in sorted(slugs)]
        if keys or skus or any(name.endswith(":catalog") for name, _ in entries):
            keys.append(LISTINGS_VERSION)
        if ids:
            await self.backend.index_products(sorted(ids))
        if LISTINGS_VERSION in keys:  # a product changed: fold its facet deltas while they are few
            async with self.pool.acquire() as conn:
                await compact_facet_cells(conn)
        await self.cache.bump(keys)
        return keys


class CatalogEventConsumer:
    async def __init__(self, config: OwnerConfig, index: int = 0, count: int = 1):
        configure_owner_process(config, "catalog-events")
        self.config = config
        self.consumer = f"catalog-{index}"
        self.handled = 0
        self.connected = False
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        delay = 0.2
        while True:
            pool = redis = backend = None
            try:
                pool = await create_pool(self.config.database_url, min_size=1, max_size=2)
                redis = create_redis(self.config.redis_url)
                cache = CatalogCache(redis)
                backend = create_backend(pool, self.config.elasticsearch_url)
                handler = CatalogEventHandler(pool, cache, backend)
                for topic in STREAMS:
                    try:
                        await redis.xgroup_create(stream_name(topic), GROUP, id="0", mkstream=True)
                    except Exception as exc:  # BUSYGROUP: the group exists; keep its position
                        if "BUSYGROUP" not in str(exc):
                            raise
                self.connected, delay = True, 0.2
                pending = True  # first re-read what was delivered but not acknowledged before a restart
                while True:
                    streams = {stream_name(t): ("0" if pending else ">") for t in STREAMS}
                    reply = await redis.xreadgroup(GROUP, self.consumer, streams, count=BATCH,
                                                   block=None if pending else 1000)
                    entries = [(name.decode() if isinstance(name, bytes) else name, eid, _decode(fields))
                               for name, items in (reply or []) for eid, fields in items]
                    if pending and not entries:
                        pending = False
                        continue
                    if entries:
                        await handler.handle([(name, fields) for name, _, fields in entries])
                        self.handled += len(entries)
                        for name in {e[0] for e in entries}:
                            await redis.xack(name, GROUP, *[e[1] for e in entries if e[0] == name])
                        if not pending and len(entries) < BATCH:
                            await asyncio.sleep(self.config.settings.consumer_linger_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dependency is down: report, back off, start over (unacked entries come back)
                self.connected = False
                log.warning("catalog event consumer interrupted; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await close_quietly(backend and backend.close(), pool and pool.close(), redis and redis.aclose())

    async def ping(self) -> dict:
        return {"ready": self.connected, "pid": os.getpid(), "handled": self.handled}
