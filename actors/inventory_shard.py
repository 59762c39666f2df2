"""InventoryShard: the Ray actor that owns the stock of the SKUs hashing to it.

The shell around the pure `Ledger`: it applies each command to memory at once, answers refusals
at once (they change nothing), and answers every accepted command only after the group commit
that made it durable. On start, and after a failed commit, it rebuilds its slice from Postgres;
commands wait while it loads. A reservation expiry timer returns stock that nobody committed.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import Counter
from typing import Any

from ray.util import metrics

from actors.batching import Batcher
from actors.directory import OwnerConfig
from actors.domain.errors import ErrorCode, SurgeError, Unavailable
from actors.domain.events import (
    DomainEvent, ReservationExpired, StockAdjusted, StockCommitted, StockLevelChanged, StockReleased,
    StockReserved, event_payload, event_type,
)
from actors.domain.inventory import Ledger, ReserveResult
from actors.keyed_locks import KeyedLocks
from actors.process import configure_owner_process
from actors.routing import shard_for
from storage import inventory_store
from storage.inventory_store import InventoryBatch, Movement
from storage.logs import request_id_var
from storage.outbox import OutboxRow
from storage.pool import create_pool

log = logging.getLogger("surge.inventory")

_MOVEMENT_KIND = {StockReserved: ("reserve", 1), StockReleased: ("release", -1), ReservationExpired: ("expire", -1)}


def to_batch(dirty, events: list[DomainEvent]) -> InventoryBatch:
    """Rows, movements and outbox rows for one commit. Only the last StockLevelChanged per SKU is
    kept: within one commit the intermediate levels were never durable, so nobody should see them."""
    last_level: dict[str, int] = {}
    for i, e in enumerate(events):
        if type(e) is StockLevelChanged:
            last_level[e.sku] = i
    moves: list[Movement] = []
    outbox: list[OutboxRow] = []
    for i, e in enumerate(events):
        cls = type(e)
        if cls is StockLevelChanged and last_level[e.sku] != i:
            continue
        if cls in _MOVEMENT_KIND:
            kind, sign = _MOVEMENT_KIND[cls]
            moves.extend(Movement(sku, kind, 0, sign * q, None, e.reservation_id, e.occurred_at) for sku, q in e.lines)
        elif cls is StockCommitted:
            moves.extend(Movement(sku, "commit", -q, -q, None, e.reservation_id, e.occurred_at) for sku, q in e.lines)
        elif cls is StockAdjusted:
            moves.append(Movement(e.sku, "adjust", e.delta, 0, e.reason, None, e.occurred_at, e.adjustment_id))
        outbox.append(OutboxRow(uuid.uuid4(), e.topic, e.key, event_type(e), event_payload(e), e.occurred_at))
    return InventoryBatch(dirty.stock_rows, dirty.reservation_rows, moves, outbox)


def _reserve_answer(r: ReserveResult, ledger: Ledger, lines) -> dict[str, Any]:
    levels = ledger.levels(sku for sku, _ in lines)
    return {
        "reservation_id": r.reservation_id, "ok": r.ok, "code": r.code.value if r.code else None,
        "state": r.state.value if r.state else None, "expires_at": r.expires_at,
        "available": {sku: lv.available for sku, lv in levels.items()}, "replayed": r.replayed,
    }


class InventoryShard:
    """Owns SKUs where `shard_for(sku, count) == index`. Constructed by `ActorDirectory`."""

    async def __init__(self, config: OwnerConfig, index: int, count: int):
        configure_owner_process(config, f"inventory-{index}")
        self.index, self.count, self.config = index, count, config
        self.ledger = Ledger()
        self.pool = None
        self._ready = asyncio.Event()
        self.flushes = self.flushed_commands = 0  # since this process started
        self._committer: Batcher = Batcher(self._flush, on_flushed=self._record_flush)
        self._adjust_locks = KeyedLocks()
        tags = {"shard": str(index)}
        self._m_batch = metrics.Histogram("surge_owner_flush_batch_size", "Commands per group commit.",
                                          boundaries=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000], tag_keys=("shard",))
        self._m_flush = metrics.Histogram("surge_owner_flush_duration_seconds", "Group-commit latency in seconds.",
                                          boundaries=[0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0], tag_keys=("shard",))
        self._m_reservations = metrics.Counter("surge_reservations", "Reservation attempts by outcome.",
                                               tag_keys=("shard", "outcome"))
        for m in (self._m_batch, self._m_flush, self._m_reservations):
            m.set_default_tags(tags)
        self._loader = asyncio.create_task(self._load_until_ready())
        self._sweeper = asyncio.create_task(self._expiry_loop())

    # --- lifecycle -------------------------------------------------------------------------
    def _owns(self, sku: str) -> bool:
        return shard_for(sku, self.count) == self.index

    async def _load_until_ready(self) -> None:
        delay = 0.2
        while True:
            try:
                if self.pool is None:
                    self.pool = await create_pool(self.config.database_url, min_size=1, max_size=4)
                stock, lines = await inventory_store.load_slice(self.pool, self._owns)
                self.ledger = Ledger.from_rows(stock, lines)
                self._ready.set()
                log.info("slice loaded", extra={"shard": self.index, "skus": len(stock), "live_lines": len(lines)})
                return
            except Exception as exc:  # the database may be down: keep trying, report not ready meanwhile
                log.warning("loading slice failed; retrying", extra={"shard": self.index, "error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _until_ready(self) -> None:
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), 10)
            except asyncio.TimeoutError:
                raise Unavailable("inventory is loading; retry shortly", shard=self.index) from None

    def _record_flush(self, n: int, seconds: float) -> None:
        self.flushes += 1
        self.flushed_commands += n
        self._m_batch.observe(n)
        self._m_flush.observe(seconds)

    # --- group commit ----------------------------------------------------------------------
    async def _flush(self, items: list[list[DomainEvent]]) -> None:
        # Snapshot first, before any await: the batch holds every command applied so far.
        dirty = self.ledger.drain_dirty()
        events = [e for evs in items for e in evs]
        if not dirty and not events:
            return None
        try:
            await inventory_store.commit_batch(self.pool, to_batch(dirty, events))
        except Exception as exc:
            # Memory now holds changes the database refused; so do commands queued behind them.
            self._ready.clear()
            self._committer.fail_queued(Unavailable("inventory commit failed; retry", shard=self.index))
            log.error("group commit failed; reloading slice", extra={"shard": self.index, "error": repr(exc)})
            self._loader = asyncio.create_task(self._load_until_ready())
            raise Unavailable("inventory commit failed; retry", shard=self.index) from exc
        return None

    async def _durable(self, events: list[DomainEvent]) -> None:
        await self._committer.submit(events)

    # --- commands --------------------------------------------------------------------------
    async def reserve_many(self, commands: list[dict], request_ids: list[str] | None = None) -> list[dict]:
        """Each command: {reservation_id, owner, lines: [[sku, qty], ...], ttl_s, customer_id?}.

        Answers in order. Accepted reservations are answered after their commit; refusals at once.
        A command that is invalid gets {"ok": False, "code": <error code>, "detail": ...}.
        """
        await self._until_ready()
        log.info("reserve batch", extra={"shard": self.index, "n": len(commands), "request_ids": request_ids})
        now = time.time()
        answers: list[dict] = []
        events: list[DomainEvent] = []
        outcomes: Counter[str] = Counter()  # one metric update per outcome per call, not per command
        for cmd in commands:
            try:
                r = self.ledger.reserve(cmd["reservation_id"], cmd["owner"], [tuple(l) for l in cmd["lines"]],
                                        cmd["ttl_s"], now, cmd.get("customer_id"))
            except SurgeError as exc:  # invalid input: answered per command, never failing the batch
                answers.append({"reservation_id": cmd.get("reservation_id"), "ok": False,
                                "code": exc.code.value, "detail": exc.detail})
                continue
            events.extend(r.events)
            answers.append(_reserve_answer(r, self.ledger, cmd["lines"]))
            outcomes["held" if r.ok else (r.code.value if r.code else "refused")] += 1
        for outcome, n in outcomes.items():
            self._m_reservations.inc(n, tags={"outcome": outcome})
        if any(a["ok"] for a in answers):
            await self._durable(events)
        return answers

    async def release_many(self, reservation_ids: list[str], request_ids: list[str] | None = None) -> list[dict]:
        return await self._transition_many("release", reservation_ids, request_ids)

    async def commit_many(self, reservation_ids: list[str], request_ids: list[str] | None = None) -> list[dict]:
        return await self._transition_many("commit", reservation_ids, request_ids)

    async def _transition_many(self, op: str, reservation_ids: list[str], request_ids) -> list[dict]:
        await self._until_ready()
        log.info(f"{op} batch", extra={"shard": self.index, "n": len(reservation_ids), "request_ids": request_ids})
        now = time.time()
        fn = getattr(self.ledger, op)
        results = [fn(rid, now) for rid in reservation_ids]
        await self._durable([e for r in results for e in r.events])
        return [{"reservation_id": r.reservation_id, "ok": r.ok, "state": r.state.value if r.state else None,
                 "code": r.code.value if r.code else None} for r in results]

    async def adjust(self, sku: str, delta: int, reason: str, request_id: str | None = None,
                     adjustment_id: str | None = None) -> dict:
        """Restock or write off. With an `adjustment_id` (idempotency key) it is applied once: a
        retry gets `replayed` and the current level; the same key for another change, a conflict.
        The key's lock is held until the commit, so a concurrent retry sees what it committed."""
        await self._until_ready()
        request_id_var.set(request_id)
        if adjustment_id is None:
            return await self._adjust(sku, delta, reason, None)
        async with self._adjust_locks.hold(adjustment_id):
            prior = await inventory_store.find_adjustment(self.pool, adjustment_id)
            if prior is None:
                return await self._adjust(sku, delta, reason, adjustment_id)
        if (prior["sku"], prior["delta"], prior["reason"]) != (sku, delta, reason):
            return {"sku": sku, "ok": False, "code": ErrorCode.IDEMPOTENCY_CONFLICT.value, "level": None}
        return {"sku": sku, "ok": True, "code": None, "replayed": True,
                "level": _level_dict(self.ledger.levels([sku])[sku])}

    async def _adjust(self, sku: str, delta: int, reason: str, adjustment_id: str | None) -> dict:
        r = self.ledger.adjust(sku, delta, reason, time.time(), adjustment_id)
        await self._durable(r.events)
        log.info("stock adjusted", extra={"shard": self.index, "sku": sku, "delta": delta, "ok": r.ok})
        return {"sku": sku, "ok": r.ok, "code": r.code.value if r.code else None, "level": _level_dict(r.level)}

    async def upsert_skus(self, rows: list[dict], request_id: str | None = None) -> list[dict]:
        """Create SKUs or set absolute stock/settings: rows of {sku, on_hand, low_stock_threshold?, per_customer_cap?}."""
        await self._until_ready()
        request_id_var.set(request_id)
        now = time.time()
        results = [self.ledger.upsert_sku(r["sku"], r["on_hand"], r.get("low_stock_threshold", 0),
                                          r.get("per_customer_cap"), now=now) for r in rows]
        await self._durable([e for r in results for e in r.events])
        return [{"sku": r.sku, "ok": r.ok, "created": r.created, "code": r.code.value if r.code else None} for r in results]

    async def refresh_skus(self) -> int:
        """Adopt SKU rows created in the database since the slice was loaded (bulk seeding)."""
        await self._until_ready()
        stock, lines = await inventory_store.load_slice(self.pool, self._owns)
        new = {r["sku"] for r in stock if self.ledger.stock(r["sku"]) is None}
        if not new:
            return 0
        fresh = Ledger.from_rows([r for r in stock if r["sku"] in new], [l for l in lines if l["sku"] in new])
        return len(self.ledger.adopt(fresh))

    # --- queries ---------------------------------------------------------------------------
    async def levels(self, skus: list[str] | None = None) -> dict[str, dict]:
        await self._until_ready()
        return {s: _level_dict(lv) for s, lv in self.ledger.levels(skus).items()}

    async def low_stock(self) -> list[dict]:
        await self._until_ready()
        return [_level_dict(lv) for lv in self.ledger.low_stock()]

    async def check_invariants(self) -> list[str]:
        await self._until_ready()
        return self.ledger.check_invariants()

    async def ping(self) -> dict:
        return {"ready": self._ready.is_set(), "shard": self.index, "pid": os.getpid(),
                "skus": self.ledger.sku_count if self._ready.is_set() else 0, "queued": self._committer.queued,
                "flushes": self.flushes, "flushed_commands": self.flushed_commands}

    # --- expiry ----------------------------------------------------------------------------
    async def _expiry_loop(self) -> None:
        keep_s = self.config.settings.settled_reservations_keep_s
        while True:
            await self._ready.wait()
            nxt = self.ledger.next_expiry()
            wait = 1.0 if nxt is None else max(0.0, min(1.0, nxt - time.time()))
            await asyncio.sleep(wait)
            if not self._ready.is_set():
                continue
            if keep_s:  # each turn (about a second) forgets what settled in a second, keep_s ago
                self.ledger.forget_settled(time.time() - keep_s)
            result = self.ledger.expire_due(time.time())
            if result.expired:
                try:
                    await self._durable(result.events)
                    log.info("reservations expired", extra={"shard": self.index, "n": len(result.expired)})
                except Unavailable:
                    pass  # the slice reloads; the expiry is found again from the database


def _level_dict(lv) -> dict:
    return {"sku": lv.sku, "on_hand": lv.on_hand, "reserved": lv.reserved, "available": lv.available,
            "sold": lv.sold, "received": lv.received, "low_stock_threshold": lv.low_stock_threshold,
            "per_customer_cap": lv.per_customer_cap, "version": lv.version}
