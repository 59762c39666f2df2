"""The cart aggregate: pure rules, no I/O (the `CartShard` actor owns, persists and publishes it).

Contract:
- Quantities are whole units, 1..`MAX_LINE_QUANTITY` per line and `MAX_LINES` lines per cart; a
  per-customer cap (from the SKU's stock row) bounds a line's quantity.
- The cart stores what the shopper chose (SKUs, quantities, a coupon code, saved-for-later items);
  it never stores prices: prices are computed on the server at every read (`pricing.py`).
- A line of a flash-sale product carries `Hold`s: reservations in the inventory shard, each with its
  own id, quantity and expiry, summing to the line's quantity. Adding units takes a new hold for
  just the added units (never "hold the new total, then release the old", which fails near the
  last unit and the per-customer cap). The cart shows the countdown of the earliest hold; an
  expired hold takes its units out of the line at the next read (the inventory shard already
  returned the stock when it expired the reservation).
- Every change bumps `version`; the persisted row is fenced by it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.domain.errors import CapExceeded, InvalidQuantity, NotFound, ValidationFailed

MAX_LINE_QUANTITY = 99
MAX_LINES = 100
MAX_SAVED = 100


@dataclass(frozen=True, slots=True)
class Hold:
    reservation_id: str
    quantity: int
    expires_at: float


@dataclass(slots=True)
class Line:
    sku: str
    quantity: int
    added_at: float
    holds: list[Hold] = field(default_factory=list)

    @property
    def held(self) -> int:
        return sum(h.quantity for h in self.holds)

    @property
    def expires_at(self) -> float | None:
        return min((h.expires_at for h in self.holds), default=None)


@dataclass(slots=True)
class Cart:
    id: str
    customer_id: str | None = None
    currency: str = "USD"
    lines: dict[str, Line] = field(default_factory=dict)
    saved: dict[str, int] = field(default_factory=dict)
    coupon_code: str | None = None
    status: str = "active"
    version: int = 0

    # --- queries ---------------------------------------------------------------------------
    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines.values())

    def holds(self) -> list[Hold]:
        return [h for line in self.lines.values() for h in line.holds]

    def drop_expired_holds(self, now: float) -> list[Hold]:
        """Take the units of expired holds out of their lines (a line left empty goes)."""
        dropped: list[Hold] = []
        for sku in list(self.lines):
            line = self.lines[sku]
            gone = [h for h in line.holds if h.expires_at <= now]
            if not gone:
                continue
            dropped.extend(gone)
            line.holds = [h for h in line.holds if h.expires_at > now]
            line.quantity -= sum(h.quantity for h in gone)
            if line.quantity <= 0 or not line.holds:
                del self.lines[sku]
        if dropped:
            self._changed()
        return dropped

    # --- commands (each returns nothing, raises a SurgeError on invalid input) -------------
    def set_line(self, sku: str, quantity: int, now: float, cap: int | None = None,
                 holds: list[Hold] | None = None) -> None:
        """Put `quantity` units of `sku` in the cart (adds a line or replaces its quantity); a held
        line's `holds` must sum to `quantity`."""
        check_quantity(quantity, cap)
        if holds and sum(h.quantity for h in holds) != quantity:
            raise ValueError("holds must cover the line's quantity exactly")
        if sku not in self.lines and len(self.lines) >= MAX_LINES:
            raise ValidationFailed(f"A cart holds at most {MAX_LINES} lines.")
        line = self.lines.get(sku)
        if line is None:
            self.lines[sku] = Line(sku, quantity, now, list(holds or []))
        else:
            line.quantity = quantity
            line.holds = list(holds or [])
        self.saved.pop(sku, None)
        self._changed()

    def remove_line(self, sku: str) -> Line:
        line = self.lines.pop(sku, None)
        if line is None:
            raise NotFound("This item is not in the cart.", sku=sku)
        self._changed()
        return line

    def save_for_later(self, sku: str) -> Line:
        if len(self.saved) >= MAX_SAVED and sku not in self.saved:
            raise ValidationFailed(f"At most {MAX_SAVED} items can be saved for later.")
        line = self.remove_line(sku)
        self.saved[sku] = line.quantity
        return line

    def set_coupon(self, code: str | None) -> None:
        self.coupon_code = code.strip().upper() if code else None
        self._changed()

    def take_ordered(self, ordered: list[tuple[str, int]]) -> bool:
        """An order for these (sku, quantity) was paid: remove what it bought. A held line goes
        whole (the order committed its hold); others lose the ordered quantity. The coupon was
        spent on the order. Returns whether anything changed."""
        changed = self.coupon_code is not None
        for sku, quantity in ordered:
            line = self.lines.get(sku)
            if line is None:
                continue
            changed = True
            if line.holds or line.quantity <= quantity:
                del self.lines[sku]
            else:
                line.quantity -= quantity
        self.coupon_code = None
        if changed:
            self._changed()
        return changed

    def absorb(self, guest: Cart, now: float, caps: dict[str, int | None] | None = None) -> list[Hold]:
        """Merge a guest cart into this (the customer's) cart at sign-in.

        Quantities of a SKU in both add up, bounded by the line maximum and the SKU's cap; a
        guest's hold moves with its line when this cart has none for that SKU. Returns the guest
        holds that were not taken over (the caller releases them)."""
        caps = caps or {}
        dropped: list[Hold] = []
        for sku, gline in guest.lines.items():
            mine = self.lines.get(sku)
            limit = min(MAX_LINE_QUANTITY, caps.get(sku) or MAX_LINE_QUANTITY)
            if mine is None:
                if len(self.lines) >= MAX_LINES or (gline.holds and gline.quantity > limit):
                    dropped.extend(gline.holds)
                    continue
                self.lines[sku] = Line(sku, min(gline.quantity, limit), now, list(gline.holds))
            elif mine.holds or gline.holds:
                # held units are not re-held here: the customer's own held line wins
                if mine.holds:
                    dropped.extend(gline.holds)
                else:
                    self.lines[sku] = Line(sku, gline.quantity, mine.added_at, list(gline.holds))
            else:
                mine.quantity = min(mine.quantity + gline.quantity, limit)
        for sku, qty in guest.saved.items():
            if sku not in self.lines and len(self.saved) < MAX_SAVED:
                self.saved[sku] = max(self.saved.get(sku, 0), qty)
        if self.coupon_code is None:
            self.coupon_code = guest.coupon_code
        guest.lines.clear()
        guest.saved.clear()
        guest.status = "merged"
        guest._changed()
        self._changed()
        return dropped

    def _changed(self) -> None:
        self.version += 1

    # --- persistence shape -------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return {
            "lines": [{"sku": l.sku, "quantity": l.quantity, "added_at": l.added_at,
                       "holds": [{"reservation_id": h.reservation_id, "quantity": h.quantity, "expires_at": h.expires_at}
                                 for h in l.holds]}
                      for l in self.lines.values()],
            "saved": [{"sku": s, "quantity": q} for s, q in self.saved.items()],
            "coupon_code": self.coupon_code,
        }

    @classmethod
    def from_doc(cls, cart_id: str, customer_id: str | None, currency: str, status: str, version: int,
                 doc: dict[str, Any]) -> Cart:
        cart = cls(cart_id, customer_id, currency, status=status, version=version, coupon_code=doc.get("coupon_code"))
        for l in doc.get("lines", []):
            cart.lines[l["sku"]] = Line(l["sku"], int(l["quantity"]), float(l["added_at"]),
                                        [Hold(h["reservation_id"], int(h["quantity"]), float(h["expires_at"]))
                                         for h in l.get("holds") or []])
        for s in doc.get("saved", []):
            cart.saved[s["sku"]] = int(s["quantity"])
        return cart


def check_quantity(quantity: int, cap: int | None = None) -> None:
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1 or quantity > MAX_LINE_QUANTITY:
        raise InvalidQuantity(f"Quantity must be a whole number from 1 to {MAX_LINE_QUANTITY}.", quantity=quantity)
    if cap is not None and quantity > cap:
        raise CapExceeded(f"At most {cap} per customer for this item.", cap=cap)


@dataclass(frozen=True, slots=True)
class HoldPlan:
    keep: list[Hold]
    release: list[Hold]
    reserve: int  # units to hold anew


def plan_holds(holds: list[Hold], target: int) -> HoldPlan:
    """How a held line gets to `target` units: growing holds only the added units; shrinking
    releases whole holds, and re-holds the remainder of one it had to split."""
    held = sum(h.quantity for h in holds)
    if target >= held:
        return HoldPlan(list(holds), [], target - held)
    keep: list[Hold] = []
    kept = 0
    release: list[Hold] = []
    for h in holds:
        if kept + h.quantity <= target:
            keep.append(h)
            kept += h.quantity
        else:
            release.append(h)
    return HoldPlan(keep, release, target - kept)
