"""Notifier: turns order events into customer notifications (the mailbox, and SMTP when configured).

It consumes the Valkey stream `surge:events:order` in the consumer group `notifier` (XREADGROUP,
XACK after the notification is recorded and sent), so the group remembers how far it got:
- An entry is acknowledged only after its notification row is committed and delivered; a crash in
  between leaves it pending, and the restarted actor (same consumer name, `notifier-<index>`)
  re-reads its own pending entries first, then claims entries other consumers left idle
  (XAUTOCLAIM), then reads new ones. Nothing is lost; some things may be handled twice.
- Handling twice is harmless: one notification per event id (`notifications.event_id` is unique,
  `storage/mailbox.py`), and a recorded-but-unsent notification is sent on the next delivery.
- An entry that cannot be a notification (unknown type, malformed payload) is acknowledged and
  logged, so it never blocks the stream. A dependency failure (database, SMTP) is not: the loop
  backs off and re-reads its pending entries, delaying later notifications rather than dropping any.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Callable

from actors.directory import OwnerConfig
from actors.domain.notifications import render
from actors.process import configure_owner_process
from storage.cache import create_redis
from storage.mailbox import Mailbox, transport_of
from storage.outbox import stream_name
from storage.pool import close_quietly, create_pool
from storage.smtp import SmtpSender

log = logging.getLogger("surge.notifier")

STREAM = stream_name("order")
GROUP = "notifier"
BATCH = 100
BLOCK_MS = 1000
CLAIM_IDLE_MS = 60_000  # an entry pending this long on another consumer is taken over
CLAIM_EVERY_S = 30.0


class NotificationConsumer:
    """One consumer of an order-event stream in a consumer group: the loop's steps, without Ray."""

    def __init__(self, redis, mailbox: Mailbox, sender: SmtpSender | None = None, *, stream: str = STREAM,
                 group: str = GROUP, consumer: str = "notifier-0", claim_idle_ms: int = CLAIM_IDLE_MS,
                 on_sent: Callable[[str, str], None] | None = None):
        self.redis, self.mailbox, self.sender = redis, mailbox, sender
        self.on_sent = on_sent  # (kind, transport), once per notification delivered
        self.stream, self.group, self.consumer = stream, group, consumer
        self.claim_idle_ms = claim_idle_ms
        self.transport = transport_of(sender)
        self.notified = 0  # notifications delivered by this consumer
        self.skipped = 0  # entries acknowledged without a notification

    async def ensure_group(self) -> None:
        try:  # from the stream's start: events relayed before the first notifier ran are not lost
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: it exists, which is the usual case
            if "BUSYGROUP" not in str(exc):
                raise

    async def drain_pending(self) -> int:
        """Handle the entries delivered to this consumer but never acknowledged (a crash mid-way)."""
        handled, start = 0, "0"
        while True:
            reply = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: start}, count=BATCH)
            entries = reply[0][1] if reply else []
            if not entries:
                return handled
            for entry_id, fields in entries:
                await self.handle(entry_id, fields)
                handled += 1
            start = entries[-1][0]

    async def claim_stale(self) -> int:
        """Take over and handle entries other consumers left pending longer than `claim_idle_ms`."""
        handled, start = 0, "0-0"
        while True:
            reply = await self.redis.xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms,
                                                start_id=start, count=BATCH)
            start, entries = reply[0], reply[1]
            for entry_id, fields in entries:
                await self.handle(entry_id, fields)
                handled += 1
            if start in (b"0-0", "0-0"):
                return handled

    async def read_new(self, block_ms: int = BLOCK_MS) -> int:
        reply = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=BATCH, block=block_ms)
        entries = reply[0][1] if reply else []
        for entry_id, fields in entries:
            await self.handle(entry_id, fields)
        return len(entries)

    async def handle(self, entry_id, fields: dict | None) -> None:
        note = event_id = None
        try:
            if fields:  # None/empty: the entry was trimmed from the stream while pending
                event_type = fields[b"type"].decode()
                note = render(event_type, json.loads(fields[b"payload"]))
                event_id = uuid.UUID(fields[b"event_id"].decode())
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            log.error("order event cannot be notified; skipping it",
                      extra={"entry_id": _text(entry_id), "error": repr(exc)})
            note = None
        if note is not None:
            entry = await self.mailbox.record(event_id, note.kind, note.to_email, note.subject, note.body,
                                              note.order_number, self.transport)
            if await self.mailbox.deliver(entry, self.sender):
                self.notified += 1
                if self.on_sent is not None:
                    self.on_sent(note.kind, self.transport)
                log.info("notification sent", extra={"event_id": str(event_id), "kind": note.kind,
                                                     "order_number": note.order_number, "transport": self.transport})
        else:
            self.skipped += 1
        await self.redis.xack(self.stream, self.group, entry_id)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Notifier:
    """The Ray actor (kind "notifier" in actors/directory.py): one consumer loop, restartable."""

    async def __init__(self, config: OwnerConfig, index: int = 0, count: int = 1):
        configure_owner_process(config, "notifier")
        self.config = config
        self.consumer_name = f"notifier-{index}"  # stable across restarts: it finds its own pending entries
        self.connected = False
        self.consumer: NotificationConsumer | None = None
        from ray.util import metrics

        sent = metrics.Counter("surge_notifications", "Customer notifications delivered, by kind and transport.",
                               tag_keys=("kind", "transport"))
        self._count_sent = lambda kind, transport: sent.inc(tags={"kind": kind, "transport": transport})
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        delay = 0.2
        settings = self.config.settings
        while True:
            pool = redis = None
            try:
                pool = await create_pool(self.config.database_url, min_size=1, max_size=2)
                redis = create_redis(self.config.redis_url, timeout_s=BLOCK_MS / 1000 + 5)
                sender = SmtpSender(settings.smtp_url) if settings.smtp_url else None
                consumer = NotificationConsumer(redis, Mailbox(pool, settings.mailbox_dir), sender,
                                                consumer=self.consumer_name, on_sent=self._count_sent)
                if self.consumer is not None:  # keep the counts across reconnections
                    consumer.notified, consumer.skipped = self.consumer.notified, self.consumer.skipped
                self.consumer = consumer
                await consumer.ensure_group()
                await consumer.drain_pending()
                await consumer.claim_stale()
                self.connected, delay = True, 0.2
                claimed_at = time.monotonic()
                while True:
                    await consumer.read_new()
                    if time.monotonic() - claimed_at > CLAIM_EVERY_S:
                        await consumer.claim_stale()
                        claimed_at = time.monotonic()
            except Exception as exc:  # a dependency is down: report, back off, start over from pending
                self.connected = False
                log.warning("notifier interrupted; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await close_quietly(pool and pool.close(), redis and redis.aclose())

    async def ping(self) -> dict:
        consumer = self.consumer
        return {"ready": self.connected, "pid": os.getpid(),
                "notified": consumer.notified if consumer else 0, "skipped": consumer.skipped if consumer else 0}
