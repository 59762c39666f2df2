"""How callers (API replicas, cart and order owners) talk to the inventory shards.

- **Coalescing**: concurrent reservations for one shard travel in one actor call (a `Batcher` per
  shard and operation), so a flash-sale crowd costs a handful of actor hops, not one per shopper.
- **Sold-out memory**: every answer carries the SKUs' availability; a SKU seen at zero within the
  last `soldout_ttl_s` is refused here without a hop. Staleness is bounded by that TTL (a unit
  released a moment ago may be refused for at most that long), never the other way round: this
  copy can only refuse, and the shard alone grants. The trade-off: a *retry* of a reservation id
  that the shard did hold, arriving while the SKU is known sold out, is refused from memory instead
  of replayed as held (the hold still expires, so no unit is lost). Callers that need the exact
  idempotent answer, such as an order saga retrying after a crash, use `soldout_ttl_s=0`.
- **All or nothing across shards**: lines are split by owner; if any shard refuses, the others
  release the same reservation id. A caller that dies midway leaves holds that expire by TTL.
  A reservation id is single-use: retry a refused reservation with a new id.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import partial

from actors.batching import Batcher
from actors.directory import ActorDirectory
from actors.domain.errors import ErrorCode
from actors.routing import shard_for
from storage.logs import request_id_var

MAX_CALL_BATCH = 1000


@dataclass(frozen=True)
class ReserveOutcome:
    reservation_id: str
    held: bool
    code: str | None = None
    expires_at: float | None = None
    available: dict[str, int] = field(default_factory=dict)
    replayed: bool = False
    detail: str | None = None
    from_cache: bool = False


class InventoryClient:
    def __init__(self, directory: ActorDirectory, soldout_ttl_s: float = 0.25):
        self.directory = directory
        self.shards = directory.shard_count("inventory")
        self.soldout_ttl_s = soldout_ttl_s
        self._seen_at_zero: dict[str, float] = {}
        self._batchers: dict[tuple[str, int], Batcher] = {}

    # --- plumbing ----------------------------------------------------------------------------
    def _batcher(self, method: str, shard: int) -> Batcher:
        key = (method, shard)
        b = self._batchers.get(key)
        if b is None:
            b = self._batchers[key] = Batcher(partial(self._send, method, shard), max_batch=MAX_CALL_BATCH)
        return b

    async def _send(self, method: str, shard: int, items: list[tuple[object, str | None]]) -> list:
        payloads = [p for p, _ in items]
        request_ids = [rid for _, rid in items]
        return await self.directory.call("inventory", shard, method, payloads, request_ids)

    def _remember(self, available: dict[str, int]) -> None:
        now = time.monotonic()
        seen = self._seen_at_zero
        for sku, n in available.items():
            if n <= 0:
                seen[sku] = now
            else:
                seen.pop(sku, None)

    def known_sold_out(self, sku: str) -> bool:
        at = self._seen_at_zero.get(sku)
        return at is not None and time.monotonic() - at < self.soldout_ttl_s

    # --- commands ----------------------------------------------------------------------------
    async def reserve(self, reservation_id: str, owner: str, lines: list[tuple[str, int]], ttl_s: float,
                      customer_id: str | None = None) -> ReserveOutcome:
        for sku, _ in lines:
            if self.known_sold_out(sku):
                return ReserveOutcome(reservation_id, False, ErrorCode.OUT_OF_STOCK.value, available={sku: 0}, from_cache=True)
        by_shard: dict[int, list[tuple[str, int]]] = {}
        for sku, qty in lines:
            by_shard.setdefault(shard_for(sku, self.shards), []).append((sku, qty))
        rid = request_id_var.get()
        futures = {
            shard: self._batcher("reserve_many", shard).submit_nowait(
                ({"reservation_id": reservation_id, "owner": owner, "lines": part, "ttl_s": ttl_s,
                  "customer_id": customer_id}, rid))
            for shard, part in by_shard.items()
        }
        answers = await asyncio.gather(*futures.values(), return_exceptions=True)
        errors = [a for a in answers if isinstance(a, BaseException)]
        ok = [a for a in answers if not isinstance(a, BaseException)]
        available: dict[str, int] = {}
        for a in ok:
            available.update(a.get("available") or {})
        self._remember(available)
        held = not errors and all(a["ok"] and a["state"] in ("held", "committed") for a in ok)
        if held:
            return ReserveOutcome(reservation_id, True, None, min(a["expires_at"] for a in ok), available,
                                  all(a.get("replayed") for a in ok))
        if len(futures) > 1:
            # all or nothing: whatever a shard held for this id goes back now, not at expiry
            await self.release(reservation_id, shards=list(futures))
        if errors:
            raise errors[0]
        refused = next(a for a in ok if not (a["ok"] and a["state"] in ("held", "committed")))
        code = refused["code"] or (ErrorCode.INVALID_TRANSITION.value if refused.get("state") else None)
        return ReserveOutcome(reservation_id, False, code, None, available, detail=refused.get("detail"))

    async def _transition(self, method: str, reservation_id: str, shards: list[int] | None) -> list[dict]:
        rid = request_id_var.get()
        targets = range(self.shards) if shards is None else shards
        return list(await asyncio.gather(*(self._batcher(method, s).submit_nowait((reservation_id, rid)) for s in targets)))

    async def release(self, reservation_id: str, shards: list[int] | None = None) -> bool:
        """Release on the given shards (all when None); releasing an unknown id is a no-op."""
        return all(a["ok"] for a in await self._transition("release_many", reservation_id, shards))

    async def commit(self, reservation_id: str, skus: list[str]) -> dict:
        """Turn the hold into a sale on every shard holding one of `skus`."""
        shards = sorted({shard_for(s, self.shards) for s in skus})
        answers = await self._transition("commit_many", reservation_id, shards)
        bad = [a for a in answers if not a["ok"]]
        return {"ok": not bad, "code": bad[0]["code"] if bad else None, "state": answers[0]["state"]}

    async def levels(self, skus: list[str]) -> dict[str, dict]:
        by_shard: dict[int, list[str]] = {}
        for sku in skus:
            by_shard.setdefault(shard_for(sku, self.shards), []).append(sku)
        parts = await asyncio.gather(*(self.directory.call("inventory", s, "levels", part) for s, part in by_shard.items()))
        out: dict[str, dict] = {}
        for p in parts:
            out.update(p)
        self._remember({s: lv["available"] for s, lv in out.items()})
        return out

    # --- admin (not on the hot path: one call each) -----------------------------------------------
    async def upsert(self, sku: str, on_hand: int, low_stock_threshold: int = 0, per_customer_cap: int | None = None) -> dict:
        row = {"sku": sku, "on_hand": on_hand, "low_stock_threshold": low_stock_threshold, "per_customer_cap": per_customer_cap}
        # Setting absolute values is idempotent, so a retry across an owner restart is safe.
        answers = await self.directory.call("inventory", shard_for(sku, self.shards), "upsert_skus", [row], request_id_var.get())
        return answers[0]

    async def adjust(self, sku: str, delta: int, reason: str, adjustment_id: str | None = None) -> dict:
        # A relative change without an idempotency key is never re-sent after it may have reached
        # the owner; with one, the owner applies it once, so a retry is safe.
        return await self.directory.call("inventory", shard_for(sku, self.shards), "adjust", sku, delta, reason,
                                         request_id_var.get(), adjustment_id, retry=adjustment_id is not None)

    async def low_stock(self) -> list[dict]:
        parts = await asyncio.gather(*(self.directory.call("inventory", s, "low_stock") for s in range(self.shards)))
        merged = [lv for part in parts for lv in part]
        merged.sort(key=lambda lv: (lv["available"], lv["sku"]))
        return merged

    async def check_invariants(self) -> list[str]:
        parts = await asyncio.gather(*(self.directory.call("inventory", s, "check_invariants") for s in range(self.shards)))
        return [b for part in parts for b in part]
