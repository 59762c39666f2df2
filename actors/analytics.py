"""Analytics: folds the order, inventory and cart streams into rollups and publishes live summaries.

It reads `surge:events:{order,inventory,cart}` in the consumer group `analytics` (like the Notifier,
`actors/notifier.py`): entries are acknowledged only after their increments commit, a restarted
actor re-reads its own pending entries first, and every event counts once because its id is
recorded in the transaction that adds it (`storage/analytics_store.py`). The counting rules are
pure (`actors/domain/analytics.py`).

After each batch (at most every `SUMMARY_EVERY_S`) it writes a summary of today and the last
minutes to the `surge:analytics` stream, which every hub process relays on its `admin` topic.
In memory only, rebuilt as events arrive after a restart: each cart's units (to tell an add from a
removal) and when each cart last changed (active shoppers).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time

from actors.directory import OwnerConfig
from actors.domain.analytics import (COUNTED_TYPES, GRAINS, StreamEvent, active_shoppers, bucket, customer_split, customer_totals,
                                     fold, totals)
from actors.process import configure_owner_process
from storage import analytics_store as store
from storage.cache import create_redis
from storage.outbox import stream_name
from storage.pool import close_quietly, create_pool

log = logging.getLogger("surge.analytics")

STREAMS = tuple(stream_name(t) for t in ("order", "inventory", "cart"))
GROUP = "analytics"
BATCH = 500
BLOCK_MS = 200
SUMMARY_EVERY_S = 0.25
QUIET_SUMMARY_EVERY_S = 5.0  # active shoppers and views move without events
CLAIM_IDLE_MS = 60_000
MAX_CARTS_REMEMBERED = 200_000
PRUNE_EVERY_S = 3600.0


class AnalyticsConsumer:
    """The loop's steps, without Ray: read, fold, commit, acknowledge, summarise."""

    def __init__(self, redis, pool, consumer: str = "analytics-0", group: str = GROUP, streams=STREAMS,
                 on_folded=None):
        self.redis, self.pool, self.consumer, self.group, self.streams = redis, pool, consumer, group, streams
        self.on_folded = on_folded  # (counted, duplicates) per batch, for metrics
        self.cart_units: dict[str, int] = {}
        self.cart_seen: dict[str, float] = {}
        self.through = 0  # the newest outbox id folded in
        self.folded = 0  # events counted (new ids)
        self.duplicates = 0  # redeliveries recognised by id

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            try:  # from the start: events relayed before the first analytics actor ran still count
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except Exception as exc:  # BUSYGROUP: it exists
                if "BUSYGROUP" not in str(exc):
                    raise

    async def drain_pending(self) -> int:
        """Entries delivered to this consumer and never acknowledged (a crash between read and ack)."""
        handled = 0
        for stream in self.streams:
            start = "0"
            while True:
                reply = await self.redis.xreadgroup(self.group, self.consumer, {stream: start}, count=BATCH)
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                await self.handle([(stream, entry_id, fields) for entry_id, fields in entries])
                handled += len(entries)
                start = entries[-1][0]
        return handled

    async def claim_stale(self, idle_ms: int = CLAIM_IDLE_MS) -> int:
        handled = 0
        for stream in self.streams:
            start = "0-0"
            while True:
                reply = await self.redis.xautoclaim(stream, self.group, self.consumer, idle_ms, start_id=start, count=BATCH)
                start, entries = reply[0], reply[1]
                if entries:
                    await self.handle([(stream, entry_id, fields) for entry_id, fields in entries])
                    handled += len(entries)
                if start in (b"0-0", "0-0"):
                    break
        return handled

    async def read_new(self, block_ms: int = BLOCK_MS) -> int:
        reply = await self.redis.xreadgroup(self.group, self.consumer, {s: ">" for s in self.streams},
                                            count=BATCH, block=block_ms)
        batch = [(_text(stream), entry_id, fields) for stream, entries in reply or [] for entry_id, fields in entries]
        if batch:
            await self.handle(batch)
        return len(batch)

    async def handle(self, batch: list[tuple[str, object, dict | None]]) -> None:
        """Fold a batch in one transaction, then acknowledge it. Malformed entries are acknowledged
        and logged (they must not block the stream); a database error is not (retried from pending)."""
        events: list[StreamEvent] = []
        for stream, entry_id, fields in batch:
            try:
                if fields and fields[b"type"].decode() in COUNTED_TYPES:  # None: trimmed while pending
                    event = StreamEvent(fields[b"event_id"].decode(), fields[b"type"].decode(),
                                        json.loads(fields[b"payload"]), float(fields[b"at"]))
                    fold([event], self.cart_units)  # a payload the rules cannot read is refused here, alone (fold only reads the memory)
                    events.append(event)
                if fields:
                    self.through = max(self.through, int(fields[b"id"]))
            except (KeyError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
                log.error("event not understood; skipped", extra={"stream": stream, "entry_id": _text(entry_id),
                                                                   "error": repr(exc)})
        if events:
            async with self.pool.acquire() as conn, conn.transaction():
                fresh = await store.mark_seen(conn, list({e.event_id for e in events}))
                new = [e for e in events if e.event_id in fresh]
                seen_here: set[str] = set()
                new = [e for e in new if not (e.event_id in seen_here or seen_here.add(e.event_id))]
                rollup = fold(new, self.cart_units)
                prior = await store.upsert_customers(conn, customer_totals(rollup.paid))
                await store.add_counts(conn, rollup.counts + customer_split(rollup.paid, prior))
                await store.add_products(conn, rollup.products)
                await store.add_alerts(conn, rollup.alerts)
            self.folded += len(new)
            self.duplicates += len(events) - len(new)
            self._remember(rollup)
            if self.on_folded is not None:
                self.on_folded(len(new), len(events) - len(new))
        pipe = self.redis.pipeline(transaction=False)
        for stream, entry_id, _ in batch:
            pipe.xack(stream, self.group, entry_id)
        await pipe.execute()

    def _remember(self, rollup) -> None:
        self.cart_units.update(rollup.cart_units)
        self.cart_seen.update(rollup.carts_touched)
        for memory in (self.cart_units, self.cart_seen):
            while len(memory) > MAX_CARTS_REMEMBERED:
                memory.pop(next(iter(memory)))

    async def copy_views(self, now: float) -> None:
        """Valkey's product-view counters into the rollups (the current and the previous bucket)."""
        async with self.pool.acquire() as conn:
            for grain, size in GRAINS.items():
                current = bucket(now, grain)
                await store.set_views(conn, grain, await store.product_views(self.redis, grain, [current - size, current]))

    async def summary(self, now: float) -> dict:
        day = bucket(now, "day")
        today = totals(await store.counts(self.pool, "day", day, day + 86_400))
        views_now = await store.product_views(self.redis, "day", [day])
        today["funnel"]["product_views"] = max(today["funnel"]["product_views"], views_now[day])
        minute = bucket(now, "minute")
        return {"at": now, "through": self.through, "today": today,
                "per_minute": await store.series(self.pool, "minute", minute - 29 * 60, minute + 60),
                "top_products": await store.top_products(self.pool, "minute", minute - 59 * 60, minute + 60, 5),
                "active_shoppers": active_shoppers(self.cart_seen, now)}

    async def publish_summary(self, now: float) -> None:
        body = await self.summary(now)
        await self.redis.xadd(store.ANALYTICS_STREAM, {"seq": self.through, "summary": json.dumps(body, separators=(",", ":"))},
                              maxlen=1000, approximate=True)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Analytics:
    """The Ray actor (kind "analytics" in actors/directory.py): one consumer loop, restartable."""

    async def __init__(self, config: OwnerConfig, index: int = 0, count: int = 1):
        configure_owner_process(config, "analytics")
        self.config = config
        self.consumer_name = f"analytics-{index}"  # stable across restarts: it finds its own pending entries
        self.connected = False
        self.consumer: AnalyticsConsumer | None = None
        from ray.util import metrics

        events = metrics.Counter("surge_analytics_events", "Events read by the Analytics actor: counted once, or "
                                 "recognised as a redelivery.", tag_keys=("outcome",))

        def count(counted: int, duplicates: int) -> None:
            if counted:
                events.inc(counted, tags={"outcome": "counted"})
            if duplicates:
                events.inc(duplicates, tags={"outcome": "duplicate"})
        self._count = count
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        delay = 0.2
        while True:
            pool = redis = None
            try:
                pool = await create_pool(self.config.database_url, min_size=1, max_size=2)
                redis = create_redis(self.config.redis_url, timeout_s=BLOCK_MS / 1000 + 5)
                consumer = AnalyticsConsumer(redis, pool, self.consumer_name, on_folded=self._count)
                if self.consumer is not None:  # keep memory and counts across reconnections
                    for name in ("cart_units", "cart_seen", "through", "folded", "duplicates"):
                        setattr(consumer, name, getattr(self.consumer, name))
                self.consumer = consumer
                await consumer.ensure_groups()
                await consumer.drain_pending()
                await consumer.claim_stale()
                self.connected, delay = True, 0.2
                claimed = summarised = pruned = 0.0
                dirty = True
                while True:
                    read = await consumer.read_new()
                    dirty |= read > 0
                    if 0 < read < BATCH:
                        await asyncio.sleep(self.config.settings.consumer_linger_s)
                    now = time.time()
                    if (dirty and now - summarised >= SUMMARY_EVERY_S) or now - summarised >= QUIET_SUMMARY_EVERY_S:
                        await consumer.copy_views(now)
                        await consumer.publish_summary(now)
                        summarised, dirty = now, False
                    if now - claimed > 30:
                        await consumer.claim_stale()
                        claimed = now
                    if now - pruned > PRUNE_EVERY_S:
                        await store.prune(pool, minute_keep_s=3 * 86_400, seen_keep_s=14 * 86_400)
                        pruned = now
            except Exception as exc:  # a dependency is down: report, back off, start over from pending
                self.connected = False
                log.warning("analytics interrupted; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await close_quietly(pool and pool.close(), redis and redis.aclose())

    async def ping(self) -> dict:
        c = self.consumer
        return {"ready": self.connected, "pid": os.getpid(), "folded": c.folded if c else 0,
                "duplicates": c.duplicates if c else 0, "through": c.through if c else 0}
