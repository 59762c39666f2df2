"""EventRelay: moves committed outbox rows to Valkey Streams, in id order, at least once.

Woken by LISTEN/NOTIFY (owners notify in the statement that commits their rows), with polling as a
fallback. On a busy stream (rounds starting less than `BUSY_GAP_S` apart) a wake waits
`relay_linger_s` first, so one round relays that window's commits; a quiet stream is read at once.
Relayed rows stay as the record of what was published for `outbox_retention_s` (default 7 days),
then the relay deletes them, so the table does not grow with every sale. A row is marked published
only after its stream entry is written, so a crash in between re-publishes it: consumers
deduplicate by `event_id`. Nothing uncommitted is ever read, because
the relay reads only what the outbox table holds.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

import asyncpg

from actors.directory import OwnerConfig
from actors.process import configure_owner_process
from storage import outbox
from storage.cache import create_redis
from storage.pool import close_quietly, create_pool

log = logging.getLogger("surge.relay")

BATCH = 1000
PRUNE_BATCH, PRUNE_BATCHES = 5000, 10
POLL_S = 1.0
BUSY_GAP_S = 0.02  # rounds starting closer than this: a busy stream, where the relay lingers
STREAM_MAXLEN = 100_000  # approximate trim: consumers that fall further behind resync from a snapshot


class EventRelay:
    async def __init__(self, config: OwnerConfig, index: int = 0, count: int = 1):
        configure_owner_process(config, "relay")
        self.config = config
        self.relayed = self.pruned = 0
        self.connected = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        delay = 0.2
        while True:
            pool = listener = redis = None
            try:
                pool = await create_pool(self.config.database_url, min_size=1, max_size=2)
                redis = create_redis(self.config.redis_url)
                listener = await asyncpg.connect(self.config.database_url)
                await listener.add_listener(outbox.OUTBOX_CHANNEL, lambda *_: self._wake.set())
                self.connected, delay = True, 0.2
                prune_at, began, linger = 0.0, 0.0, self.config.settings.relay_linger_s
                while True:
                    if time.monotonic() >= prune_at:
                        await self._prune(pool)
                        prune_at = time.monotonic() + self.config.settings.outbox_prune_every_s
                    self._wake.clear()  # before reading: a notify during the read loops again at once
                    last_round, began = began, time.monotonic()
                    if await self._relay_once(pool, redis) < BATCH:
                        try:
                            await asyncio.wait_for(self._wake.wait(), POLL_S)
                        except asyncio.TimeoutError:
                            pass
                        else:
                            # rounds this close together: a busy stream (a flash sale); lingering lets
                            # one round relay the next commits too. A quiet stream is read at once.
                            if linger and began - last_round < BUSY_GAP_S:
                                await asyncio.sleep(linger)
            except Exception as exc:  # a dependency is down: report, back off, start over
                self.connected = False
                log.warning("relay interrupted; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await close_quietly(listener and listener.close(), pool and pool.close(), redis and redis.aclose())

    async def _relay_once(self, pool: asyncpg.Pool, redis) -> int:
        async with pool.acquire() as conn:
            rows = await outbox.unpublished(conn, BATCH)
            if not rows:
                return 0
            pipe = redis.pipeline(transaction=False)
            for r in rows:
                pipe.xadd(outbox.stream_name(r["topic"]),
                          {"id": r["id"], "event_id": str(r["event_id"]), "key": r["key"], "type": r["type"],
                           "payload": r["payload"], "at": float(r["at"])},
                          maxlen=STREAM_MAXLEN, approximate=True)
            await pipe.execute()
            await outbox.mark_published(conn, [r["id"] for r in rows])
        self.relayed += len(rows)
        return len(rows)

    async def _prune(self, pool: asyncpg.Pool) -> None:
        """Relayed rows past the retention go, in batches, so no statement holds many locks, and at
        most `PRUNE_BATCHES` per check, so a long backlog never holds up relaying."""
        retention = self.config.settings.outbox_retention_s
        if not retention:
            return
        async with pool.acquire() as conn:
            for _ in range(PRUNE_BATCHES):
                n = await outbox.prune_published(conn, retention, PRUNE_BATCH)
                self.pruned += n
                if n < PRUNE_BATCH:
                    break

    async def ping(self) -> dict:
        return {"ready": self.connected, "pid": os.getpid(), "relayed": self.relayed, "pruned": self.pruned}
