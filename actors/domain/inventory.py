"""The inventory ledger: stock per SKU and the reservations that hold it, for the SKUs one shard owns.

Pure and synchronous: no Ray, no I/O, no asyncio. The `InventoryShard` actor serialises calls to
one `Ledger`, persists what `drain_dirty()` hands it (with the events the calls returned) in one
transaction, and rebuilds with `Ledger.from_rows(...)` after a restart.

Accounting (per SKU), with `available = on_hand - reserved`:

    received = sold + reserved + available          (equivalently: received = sold + on_hand)

- `received` counts every unit that ever entered the ledger: the initial `on_hand` of a new SKU,
  plus restocks, minus write-offs (`adjust`, or `upsert_sku` moving `on_hand`).
- reserve:  reserved += q                      (available -= q)
- release / expire: reserved -= q              (available += q)
- commit (a sale): on_hand -= q, reserved -= q, sold += q   (available unchanged)
- adjust(delta): on_hand += delta, received += delta; a write-off may not take `available` below 0.

Reservations move held → committed | released | expired, and never out of those three. Expected
refusals (not enough stock, per-customer cap, committing a reservation that is no longer held) are
results with `ok=False` and an `ErrorCode`; invalid input raises a `SurgeError` before anything
changes. Time is always passed in (`now`, epoch seconds): a held reservation whose `expires_at <=
now` is expired by whichever call touches it first (`expire_due`, or `release`/`commit`/a replayed
`reserve` of that id), so outcomes never depend on when the sweep last ran.

Every call returns the events it caused: the reservation or adjustment fact first, then for each
SKU it changed a `StockLevelChanged` and any crossing of that SKU's `available`: `LowStock` (down
across the threshold but not to zero), `SoldOut` (to zero), `BackInStock` (up from zero).

Settled reservations stay in memory, so a late retry of their id is still recognised, until
`forget_settled` drops those a restart would not load either (released, expired, and committed
without a customer): a retry of a forgotten id is then treated as new, as after a restart. Held
reservations and committed ones with a customer (per-customer caps count them) are never forgotten.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from actors.domain.errors import (
    ErrorCode,
    InvalidQuantity,
    ReservationConflict,
    UnknownSku,
    ValidationFailed,
)
from actors.domain.events import (
    BackInStock,
    DomainEvent,
    Lines,
    LowStock,
    ReservationExpired,
    SoldOut,
    StockAdjusted,
    StockCommitted,
    StockLevelChanged,
    StockReleased,
    StockReserved,
)

_EMPTY: Mapping[str, int] = MappingProxyType({})


class ReservationState(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


HELD = ReservationState.HELD
COMMITTED = ReservationState.COMMITTED
RELEASED = ReservationState.RELEASED
EXPIRED = ReservationState.EXPIRED


@dataclass(slots=True)
class SkuStock:
    """One SKU's stock. Invariant: received == sold + reserved + available, available >= 0."""

    sku: str
    on_hand: int
    reserved: int = 0
    low_stock_threshold: int = 0
    per_customer_cap: int | None = None  # max units held + committed per customer; None = no cap
    sold: int = 0  # units committed, cumulative
    received: int = 0  # initial + restocks - write-offs, cumulative
    version: int = 0  # bumped on every change of this row
    updated_at: float = 0.0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def is_low(self) -> bool:
        """Low stock means available <= threshold (so a sold-out SKU is low)."""
        return self.on_hand - self.reserved <= self.low_stock_threshold


@dataclass(slots=True)
class Reservation:
    """Units held for an owner ("cart:…", "order:…"); `lines` are (sku, qty) sorted by SKU."""

    reservation_id: str
    owner: str
    customer_id: str | None
    lines: Lines
    expires_at: float
    state: ReservationState = HELD
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class StockLevel:
    """A snapshot of one SKU, safe to hand out."""

    sku: str
    on_hand: int
    reserved: int
    available: int
    sold: int
    received: int
    low_stock_threshold: int
    per_customer_cap: int | None
    version: int


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """`ok`: the id is held (or was accepted before: `replayed`, and `state` says where it is now).
    On refusal (`code` OUT_OF_STOCK or CAP_EXCEEDED) nothing changed and nothing is remembered;
    `available` gives every requested SKU's available units and `cap_remaining` the units the
    customer may still take of each capped SKU requested."""

    reservation_id: str
    ok: bool
    state: ReservationState | None
    expires_at: float | None
    events: list[DomainEvent]
    code: ErrorCode | None
    available: Mapping[str, int]
    cap_remaining: Mapping[str, int]
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """Outcome of `release` or `commit`: `state` is the reservation's state after the call
    (None if the id is unknown); `code` says why `ok` is False."""

    reservation_id: str
    ok: bool
    state: ReservationState | None
    events: list[DomainEvent]
    code: ErrorCode | None = None


@dataclass(frozen=True, slots=True)
class StockResult:
    """Outcome of `adjust` or `upsert_sku`; `level` is the SKU after the call."""

    sku: str
    ok: bool
    level: StockLevel
    events: list[DomainEvent]
    code: ErrorCode | None = None
    created: bool = False


@dataclass(frozen=True, slots=True)
class ExpireResult:
    expired: list[str]
    events: list[DomainEvent]


@dataclass(frozen=True, slots=True)
class DirtyRows:
    """Snapshots of the rows changed since the last drain, shaped like the `stock_levels` and
    `reservation_lines` tables (one reservation row per line; times as epoch seconds)."""

    stock_rows: list[dict[str, Any]]
    reservation_rows: list[dict[str, Any]]

    def __bool__(self) -> bool:
        return bool(self.stock_rows or self.reservation_rows)


class Ledger:
    """Stock and reservations for a set of SKUs. Not thread-safe: one caller at a time.

    Idempotency: `reserve` with a known id and the same owner, customer and lines returns the
    first answer without changing anything; with different content it raises
    ReservationConflict. A *refused* reserve is not remembered, so retrying its id may succeed
    once stock is back. `release` is "make sure it is not held": unknown, released or expired ids
    are no-ops that succeed. `commit` of a committed id succeeds again without effect.

    Per-customer caps count the units a customer holds or has committed per SKU, across all of
    that customer's reservations (carts and orders alike).
    """

    __slots__ = ("_skus", "_reservations", "_customer_units", "_expiry_heap", "_dirty_skus", "_dirty_reservations",
                 "_forgettable")

    def __init__(self) -> None:
        self._skus: dict[str, SkuStock] = {}
        self._reservations: dict[str, Reservation] = {}
        self._customer_units: dict[tuple[str, str], int] = {}
        self._expiry_heap: list[tuple[float, str]] = []  # (expires_at, id); stale entries skipped
        self._dirty_skus: dict[str, None] = {}  # dicts as ordered sets
        self._dirty_reservations: dict[str, None] = {}
        self._forgettable: deque[tuple[float, str]] = deque()  # (settled at, id), in the order they settled

    # reading

    def stock(self, sku: str) -> SkuStock | None:
        """The live row; read it, never mutate it."""
        return self._skus.get(sku)

    def reservation(self, reservation_id: str) -> Reservation | None:
        """The live reservation; read it, never mutate it."""
        return self._reservations.get(reservation_id)

    @property
    def sku_count(self) -> int:
        return len(self._skus)

    def customer_units(self, customer_id: str, sku: str) -> int:
        return self._customer_units.get((customer_id, sku), 0)

    def levels(self, skus: Iterable[str] | None = None) -> dict[str, StockLevel]:
        """Snapshots of the given SKUs (all when None); unknown SKUs are left out."""
        if skus is None:
            return {s: _level(st) for s, st in self._skus.items()}
        found = self._skus
        return {s: _level(found[s]) for s in skus if s in found}

    def low_stock(self) -> list[StockLevel]:
        """SKUs with available <= threshold, fewest available first."""
        low = [_level(st) for st in self._skus.values() if st.is_low]
        low.sort(key=lambda lv: (lv.available, lv.sku))
        return low

    def next_expiry(self) -> float | None:
        """When the earliest held reservation expires (for the sweep timer), or None."""
        heap, reservations = self._expiry_heap, self._reservations
        while heap:
            expires_at, rid = heap[0]
            res = reservations.get(rid)
            if res is not None and res.state is HELD and res.expires_at == expires_at:
                return expires_at
            heapq.heappop(heap)
        return None

    # commands

    def upsert_sku(
        self,
        sku: str,
        on_hand: int,
        low_stock_threshold: int = 0,
        per_customer_cap: int | None = None,
        *,
        now: float,
    ) -> StockResult:
        """Create a SKU or set its absolute stock and settings (seeding, admin edits).

        Calling it again with the same values changes nothing. Moving `on_hand` counts as a
        restock or write-off (`received` moves with it) and is refused below `reserved`.
        """
        _require_str(sku, "sku")
        _require_count(on_hand, "on_hand", minimum=0)
        _require_count(low_stock_threshold, "low_stock_threshold", minimum=0)
        if per_customer_cap is not None:
            _require_count(per_customer_cap, "per_customer_cap", minimum=1)
        events: list[DomainEvent] = []
        stock = self._skus.get(sku)
        if stock is None:
            stock = SkuStock(sku, on_hand, 0, low_stock_threshold, per_customer_cap, 0, on_hand)
            self._skus[sku] = stock
            if on_hand:
                events.append(StockAdjusted(sku, on_hand, "initial", on_hand, now))
            self._touched(stock, stock.available, now, events)
            return StockResult(sku, True, _level(stock), events, created=True)
        if on_hand < stock.reserved:
            return StockResult(sku, False, _level(stock), events, ErrorCode.OUT_OF_STOCK)
        delta = on_hand - stock.on_hand
        if not delta and stock.low_stock_threshold == low_stock_threshold and stock.per_customer_cap == per_customer_cap:
            return StockResult(sku, True, _level(stock), events)
        before = stock.on_hand - stock.reserved
        stock.low_stock_threshold = low_stock_threshold
        stock.per_customer_cap = per_customer_cap
        if delta:
            stock.on_hand = on_hand
            stock.received += delta
            events.append(StockAdjusted(sku, delta, "upsert", on_hand, now))
        self._touched(stock, before, now, events)
        return StockResult(sku, True, _level(stock), events)

    def adjust(self, sku: str, delta: int, reason: str, now: float, adjustment_id: str | None = None) -> StockResult:
        """Restock (delta > 0) or write off (delta < 0). A write-off larger than `available` is
        refused with OUT_OF_STOCK: held units are never written off from under a reservation.
        `adjustment_id` (the caller's idempotency key) travels on the event to the movement row;
        the owner, which can see what was committed, refuses to apply one twice."""
        if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
            raise InvalidQuantity("An adjustment is a non-zero whole number of units.", sku=sku, delta=delta)
        _require_str(reason, "reason")
        stock = self._skus.get(sku)
        if stock is None:
            raise UnknownSku(sku=sku)
        before = stock.on_hand - stock.reserved
        if before + delta < 0:
            return StockResult(sku, False, _level(stock), [], ErrorCode.OUT_OF_STOCK)
        stock.on_hand += delta
        stock.received += delta
        events: list[DomainEvent] = [StockAdjusted(sku, delta, reason, stock.on_hand, now, adjustment_id)]
        self._touched(stock, before, now, events)
        return StockResult(sku, True, _level(stock), events)

    def reserve(
        self,
        reservation_id: str,
        owner: str,
        lines: Iterable[tuple[str, int]] | Mapping[str, int],
        ttl_s: float,
        now: float,
        customer_id: str | None = None,
    ) -> ReserveResult:
        """Hold every line until `now + ttl_s`, or none of them (see the class docstring for
        idempotency and caps). Duplicate SKUs in `lines` are summed."""
        _require_str(reservation_id, "reservation_id")
        _require_str(owner, "owner")
        if customer_id is not None:
            _require_str(customer_id, "customer_id")
        if not (0 < ttl_s < math.inf):
            raise ValidationFailed("ttl_s must be a positive number of seconds.", ttl_s=ttl_s)
        norm = _normalize_lines(lines)

        existing = self._reservations.get(reservation_id)
        if existing is not None:
            if existing.lines != norm or existing.owner != owner or existing.customer_id != customer_id:
                raise ReservationConflict(reservation_id=reservation_id)
            events: list[DomainEvent] = []
            self._expire_if_due(existing, now, events)
            return ReserveResult(reservation_id, True, existing.state, existing.expires_at, events, None, _EMPTY, _EMPTY, True)

        skus, units = self._skus, self._customer_units
        stocks = []
        for sku, _ in norm:
            stock = skus.get(sku)
            if stock is None:
                raise UnknownSku(sku=sku)
            stocks.append(stock)

        short = capped = False
        for (sku, qty), stock in zip(norm, stocks):
            if qty > stock.on_hand - stock.reserved:
                short = True
            cap = stock.per_customer_cap
            if cap is not None and customer_id is not None and units.get((customer_id, sku), 0) + qty > cap:
                capped = True
        if short or capped:
            available = {st.sku: st.on_hand - st.reserved for st in stocks}
            cap_remaining = _EMPTY
            if customer_id is not None:
                cap_remaining = {
                    st.sku: max(0, st.per_customer_cap - units.get((customer_id, st.sku), 0))
                    for st in stocks
                    if st.per_customer_cap is not None
                }
            code = ErrorCode.OUT_OF_STOCK if short else ErrorCode.CAP_EXCEEDED
            return ReserveResult(reservation_id, False, None, None, [], code, available, cap_remaining)

        expires_at = now + ttl_s
        res = Reservation(reservation_id, owner, customer_id, norm, expires_at, HELD, now, now)
        self._reservations[reservation_id] = res
        self._dirty_reservations[reservation_id] = None
        heapq.heappush(self._expiry_heap, (expires_at, reservation_id))
        events = [StockReserved(reservation_id, owner, customer_id, norm, expires_at, now)]
        for (sku, qty), stock in zip(norm, stocks):
            before = stock.on_hand - stock.reserved
            stock.reserved += qty
            if customer_id is not None:
                key = (customer_id, sku)
                units[key] = units.get(key, 0) + qty
            self._touched(stock, before, now, events)
        return ReserveResult(reservation_id, True, HELD, expires_at, events, None, _EMPTY, _EMPTY)

    def release(self, reservation_id: str, now: float) -> TransitionResult:
        """Return held stock. Unknown, released or expired ids succeed without effect (so an
        all-or-nothing caller may release on every shard); a committed one is refused with
        INVALID_TRANSITION (undoing a sale is a return, not a release)."""
        res = self._reservations.get(reservation_id)
        if res is None:
            return TransitionResult(reservation_id, True, None, [])
        events: list[DomainEvent] = []
        if res.state is HELD and not self._expire_if_due(res, now, events):
            self._settle(res, RELEASED, now, events)
        if res.state is COMMITTED:
            return TransitionResult(reservation_id, False, COMMITTED, events, ErrorCode.INVALID_TRANSITION)
        return TransitionResult(reservation_id, True, res.state, events)

    def commit(self, reservation_id: str, now: float) -> TransitionResult:
        """Turn a held reservation into a sale. Committing again succeeds without effect; an
        unknown id is refused with RESERVATION_NOT_FOUND, a released or expired one (including
        one whose hold ran out before `now`) with INVALID_TRANSITION."""
        res = self._reservations.get(reservation_id)
        if res is None:
            return TransitionResult(reservation_id, False, None, [], ErrorCode.RESERVATION_NOT_FOUND)
        events: list[DomainEvent] = []
        if res.state is HELD and not self._expire_if_due(res, now, events):
            self._settle(res, COMMITTED, now, events)
        if res.state is COMMITTED:
            return TransitionResult(reservation_id, True, COMMITTED, events)
        return TransitionResult(reservation_id, False, res.state, events, ErrorCode.INVALID_TRANSITION)

    def expire_due(self, now: float) -> ExpireResult:
        """Expire every held reservation with expires_at <= now; each returns its stock once."""
        heap, reservations = self._expiry_heap, self._reservations
        expired: list[str] = []
        events: list[DomainEvent] = []
        while heap and heap[0][0] <= now:
            expires_at, rid = heapq.heappop(heap)
            res = reservations.get(rid)
            if res is not None and res.state is HELD and res.expires_at == expires_at:
                self._settle(res, EXPIRED, now, events)
                expired.append(rid)
        return ExpireResult(expired, events)

    def forget_settled(self, before: float) -> list[str]:
        """Drop from memory the settled reservations a restart would not load (released, expired,
        committed without a customer) that settled before `before`; returns their ids. Stops at one
        whose row is not drained yet (its final state is still to be written)."""
        queue, reservations, dirty = self._forgettable, self._reservations, self._dirty_reservations
        gone: list[str] = []
        while queue and queue[0][0] < before and queue[0][1] not in dirty:
            _, rid = queue.popleft()
            res = reservations.get(rid)
            if res is not None and _forgettable(res):
                del reservations[rid]
                gone.append(rid)
        return gone

    # persistence

    def drain_dirty(self) -> DirtyRows:
        """Rows changed since the last drain, snapshotted now, and forget them. The shell writes
        exactly these (upserts) in the transaction that also writes the calls' events."""
        skus, reservations = self._skus, self._reservations
        stock_rows = [_stock_row(skus[s]) for s in self._dirty_skus]
        reservation_rows = [row for rid in self._dirty_reservations for row in _reservation_rows(reservations[rid])]
        self._dirty_skus = {}
        self._dirty_reservations = {}
        return DirtyRows(stock_rows, reservation_rows)

    def rows(self) -> DirtyRows:
        """Every row, in the same shape (for audits and tests)."""
        return DirtyRows(
            [_stock_row(st) for st in self._skus.values()],
            [row for res in self._reservations.values() for row in _reservation_rows(res)],
        )

    @classmethod
    def from_rows(cls, stock_rows: Iterable[Mapping[str, Any]], reservation_rows: Iterable[Mapping[str, Any]]) -> Ledger:
        """Rebuild from `stock_levels` and `reservation_lines` rows (mappings such as asyncpg
        Records; times as epoch seconds or datetimes).

        Pass every held reservation, and every committed one that has a customer_id: caps are
        recounted from them. Terminal reservations left out are simply forgotten, which only
        means a very late retry of their id is treated as new. Held reservations already past
        their expiry stay held until the next `expire_due(now)`, which the shell runs on start.
        """
        ledger = cls()
        for r in stock_rows:
            sku = r["sku"]
            ledger._skus[sku] = SkuStock(
                sku, int(r["on_hand"]), int(r["reserved"]), int(r["low_stock_threshold"]),
                None if r["per_customer_cap"] is None else int(r["per_customer_cap"]),
                int(r["sold"]), int(r["received"]), int(r.get("version") or 0), _epoch(r.get("updated_at")),
            )
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for r in reservation_rows:
            grouped.setdefault(r["reservation_id"], []).append(r)
        units = ledger._customer_units
        for rid, rs in grouped.items():
            first = rs[0]
            head = (first["owner"], first["customer_id"], first["state"], _epoch(first["expires_at"]))
            for r in rs[1:]:
                if (r["owner"], r["customer_id"], r["state"], _epoch(r["expires_at"])) != head:
                    raise ValidationFailed("Reservation rows disagree.", reservation_id=rid)
            owner, customer_id, state, expires_at = head
            state = ReservationState(state)
            lines = tuple(sorted((r["sku"], int(r["quantity"])) for r in rs))
            res = Reservation(rid, owner, customer_id, lines, expires_at, state,
                              _epoch(first.get("created_at")), _epoch(first.get("updated_at")))
            ledger._reservations[rid] = res
            if state is HELD:
                ledger._expiry_heap.append((expires_at, rid))
            elif _forgettable(res):
                ledger._forgettable.append((res.updated_at, rid))
            if customer_id is not None and (state is HELD or state is COMMITTED):
                for sku, qty in lines:
                    units[(customer_id, sku)] = units.get((customer_id, sku), 0) + qty
        heapq.heapify(ledger._expiry_heap)
        ledger._forgettable = deque(sorted(ledger._forgettable))
        return ledger

    def adopt(self, other: Ledger) -> list[str]:
        """Take over SKUs (and their reservations) that this ledger does not know yet, e.g. rows
        a bulk seed wrote after this ledger was loaded. Known SKUs are left untouched: the owner's
        memory is the newer truth for them. Returns the SKUs adopted."""
        new = [sku for sku in other._skus if sku not in self._skus]
        fresh = set(new)
        for sku in new:
            self._skus[sku] = other._skus[sku]
        for rid, res in other._reservations.items():
            if rid not in self._reservations and all(sku in fresh for sku, _ in res.lines):
                self._reservations[rid] = res
                if res.state is HELD:
                    heapq.heappush(self._expiry_heap, (res.expires_at, rid))
                elif _forgettable(res):
                    self._forgettable.append((res.updated_at, rid))  # out of order at worst: forgotten later
        for (customer, sku), units in other._customer_units.items():
            if sku in fresh:
                self._customer_units[(customer, sku)] = self._customer_units.get((customer, sku), 0) + units
        return new

    # audit

    def check_invariants(self) -> list[str]:
        """Breaches of the ledger's invariants, as readable sentences (empty when sound)."""
        breaches: list[str] = []
        held: dict[str, int] = {}
        units: dict[tuple[str, str], int] = {}
        for res in self._reservations.values():
            for sku, qty in res.lines:
                if qty <= 0:
                    breaches.append(f"reservation {res.reservation_id}: line {sku} has quantity {qty}")
                if sku not in self._skus:
                    breaches.append(f"reservation {res.reservation_id}: unknown SKU {sku}")
                if res.state is HELD:
                    held[sku] = held.get(sku, 0) + qty
                if res.customer_id is not None and (res.state is HELD or res.state is COMMITTED):
                    units[(res.customer_id, sku)] = units.get((res.customer_id, sku), 0) + qty
        for st in self._skus.values():
            avail = st.on_hand - st.reserved
            if avail < 0:
                breaches.append(f"{st.sku}: available {avail} < 0")
            if st.reserved < 0 or st.sold < 0:
                breaches.append(f"{st.sku}: negative reserved {st.reserved} or sold {st.sold}")
            if st.received != st.sold + st.reserved + avail:
                breaches.append(
                    f"{st.sku}: received {st.received} != sold {st.sold} + reserved {st.reserved} + available {avail}"
                )
            if st.reserved != held.get(st.sku, 0):
                breaches.append(f"{st.sku}: reserved {st.reserved} != units in held reservations {held.get(st.sku, 0)}")
        for key in units.keys() | self._customer_units.keys():
            if units.get(key, 0) != self._customer_units.get(key, 0):
                breaches.append(
                    f"customer {key[0]} on {key[1]}: counted {self._customer_units.get(key, 0)} units, "
                    f"reservations hold or sold {units.get(key, 0)}"
                )
        return breaches

    # internals

    def _expire_if_due(self, res: Reservation, now: float, events: list[DomainEvent]) -> bool:
        if res.state is HELD and res.expires_at <= now:
            self._settle(res, EXPIRED, now, events)
            return True
        return False

    def _settle(self, res: Reservation, state: ReservationState, now: float, events: list[DomainEvent]) -> None:
        """Move a held reservation to a terminal state and account for its units."""
        res.state = state
        res.updated_at = now
        self._dirty_reservations[res.reservation_id] = None
        rid, owner, customer_id, lines = res.reservation_id, res.owner, res.customer_id, res.lines
        if state is not COMMITTED or customer_id is None:
            self._forgettable.append((now, rid))
        if state is COMMITTED:
            events.append(StockCommitted(rid, owner, customer_id, lines, now))
        elif state is RELEASED:
            events.append(StockReleased(rid, owner, customer_id, lines, now))
        else:
            events.append(ReservationExpired(rid, owner, customer_id, lines, res.expires_at, now))
        skus, units = self._skus, self._customer_units
        for sku, qty in lines:
            stock = skus[sku]
            before = stock.on_hand - stock.reserved
            stock.reserved -= qty
            if state is COMMITTED:
                stock.on_hand -= qty
                stock.sold += qty
            elif customer_id is not None:
                key = (customer_id, sku)
                left = units[key] - qty
                if left:
                    units[key] = left
                else:
                    del units[key]
            self._touched(stock, before, now, events)

    def _touched(self, stock: SkuStock, before: int, now: float, events: list[DomainEvent]) -> None:
        """Mark a changed SKU dirty and emit its level event and any threshold crossings."""
        stock.version += 1
        stock.updated_at = now
        sku = stock.sku
        self._dirty_skus[sku] = None
        after = stock.on_hand - stock.reserved
        events.append(StockLevelChanged(sku, stock.on_hand, stock.reserved, after, stock.version, now))
        if after != before:
            threshold = stock.low_stock_threshold
            if before > threshold >= after > 0:  # reaching zero is SoldOut, not also LowStock
                events.append(LowStock(sku, after, threshold, now))
            if after == 0:
                events.append(SoldOut(sku, now))
            elif before == 0:
                events.append(BackInStock(sku, after, now))


def _forgettable(res: Reservation) -> bool:
    """Settled, and not one a restart loads: caps count a customer's committed units."""
    return res.state is RELEASED or res.state is EXPIRED or (res.state is COMMITTED and res.customer_id is None)


def _normalize_lines(lines: Iterable[tuple[str, int]] | Mapping[str, int]) -> Lines:
    merged: dict[str, int] = {}
    try:
        for sku, qty in lines.items() if isinstance(lines, Mapping) else lines:
            if not isinstance(sku, str) or not sku:
                raise ValidationFailed("A SKU is a non-empty string.", sku=repr(sku))
            if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
                raise InvalidQuantity(sku=sku, quantity=repr(qty))
            merged[sku] = merged.get(sku, 0) + qty
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("Lines are (sku, quantity) pairs.") from exc
    if not merged:
        raise ValidationFailed("A reservation needs at least one line.")
    return tuple(sorted(merged.items()))


def _require_str(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{name} must be a non-empty string.", field=name)


def _require_count(value: Any, name: str, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidQuantity(f"{name} must be a whole number >= {minimum}.", field=name, value=repr(value))


def _epoch(value: Any) -> float:
    if value is None:
        return 0.0
    timestamp = getattr(value, "timestamp", None)
    return float(timestamp()) if timestamp is not None else float(value)


def _level(st: SkuStock) -> StockLevel:
    return StockLevel(st.sku, st.on_hand, st.reserved, st.on_hand - st.reserved, st.sold, st.received,
                      st.low_stock_threshold, st.per_customer_cap, st.version)


def _stock_row(st: SkuStock) -> dict[str, Any]:
    return {
        "sku": st.sku, "on_hand": st.on_hand, "reserved": st.reserved, "sold": st.sold,
        "received": st.received, "low_stock_threshold": st.low_stock_threshold,
        "per_customer_cap": st.per_customer_cap, "version": st.version, "updated_at": st.updated_at,
    }


def _reservation_rows(res: Reservation) -> list[dict[str, Any]]:
    return [
        {
            "reservation_id": res.reservation_id, "sku": sku, "owner": res.owner,
            "customer_id": res.customer_id, "quantity": qty, "state": res.state.value,
            "expires_at": res.expires_at, "created_at": res.created_at, "updated_at": res.updated_at,
        }
        for sku, qty in res.lines
    ]
