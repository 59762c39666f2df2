"""Domain events: past-tense facts, written to the outbox in the transaction that makes them true.

Each event has a `topic` (the stream it goes to), a `key` (what orders it: events with the same key
are consumed in order) and its fields. `event_type(e)` and `event_payload(e)` give the outbox
row's `type` and JSON `payload`. Times are epoch seconds (floats); quantities are ints.

Reservation events (held, released, committed, expired) go to topic "reservation", keyed by
reservation id; SKU events (levels, adjustments, sold out / back in stock, low stock) to topic
"inventory", keyed by SKU. They are apart because a flash sale makes one reservation event per
shopper but, thanks to the group commit, only one level event per SKU per commit: the consumers of
stock (the hub, the cache invalidator, analytics' alerts) read the small stream and never wake
for the per-shopper one, which the outbox keeps as the record (and the relay still streams).
`StockLevelChanged.version` is the SKU row's version, so a consumer that coalesces ticks (the
realtime hub) can drop a stale one.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from functools import cache
from typing import Any, ClassVar

Lines = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class DomainEvent:
    topic: ClassVar[str] = ""
    key_field: ClassVar[str] = ""

    @property
    def key(self) -> str:
        return getattr(self, self.key_field)


# reservations: keyed by reservation id


@dataclass(frozen=True, slots=True)
class StockReserved(DomainEvent):
    topic: ClassVar[str] = "reservation"
    key_field: ClassVar[str] = "reservation_id"
    reservation_id: str
    owner: str
    customer_id: str | None
    lines: Lines
    expires_at: float
    occurred_at: float


@dataclass(frozen=True, slots=True)
class StockReleased(DomainEvent):
    topic: ClassVar[str] = "reservation"
    key_field: ClassVar[str] = "reservation_id"
    reservation_id: str
    owner: str
    customer_id: str | None
    lines: Lines
    occurred_at: float


@dataclass(frozen=True, slots=True)
class StockCommitted(DomainEvent):
    """A sale: the reserved units left the building (counted in `sold`)."""

    topic: ClassVar[str] = "reservation"
    key_field: ClassVar[str] = "reservation_id"
    reservation_id: str
    owner: str
    customer_id: str | None
    lines: Lines
    occurred_at: float


@dataclass(frozen=True, slots=True)
class ReservationExpired(DomainEvent):
    topic: ClassVar[str] = "reservation"
    key_field: ClassVar[str] = "reservation_id"
    reservation_id: str
    owner: str
    customer_id: str | None
    lines: Lines
    expires_at: float
    occurred_at: float


# SKUs: keyed by SKU


@dataclass(frozen=True, slots=True)
class StockAdjusted(DomainEvent):
    """Units received (delta > 0) or written off (delta < 0); `received` moves by `delta`."""

    topic: ClassVar[str] = "inventory"
    key_field: ClassVar[str] = "sku"
    sku: str
    delta: int
    reason: str
    on_hand: int
    occurred_at: float
    adjustment_id: str | None = None  # the caller's idempotency key, if it sent one


@dataclass(frozen=True, slots=True)
class StockLevelChanged(DomainEvent):
    topic: ClassVar[str] = "inventory"
    key_field: ClassVar[str] = "sku"
    sku: str
    on_hand: int
    reserved: int
    available: int
    version: int
    occurred_at: float


@dataclass(frozen=True, slots=True)
class SoldOut(DomainEvent):
    """Available went from above zero to zero."""

    topic: ClassVar[str] = "inventory"
    key_field: ClassVar[str] = "sku"
    sku: str
    occurred_at: float


@dataclass(frozen=True, slots=True)
class BackInStock(DomainEvent):
    """Available went from zero to above zero."""

    topic: ClassVar[str] = "inventory"
    key_field: ClassVar[str] = "sku"
    sku: str
    available: int
    occurred_at: float


@dataclass(frozen=True, slots=True)
class LowStock(DomainEvent):
    """Available crossed the low-stock threshold downward (from above it to at or below it) and
    is not zero: reaching zero is `SoldOut` instead."""

    topic: ClassVar[str] = "inventory"
    key_field: ClassVar[str] = "sku"
    sku: str
    available: int
    threshold: int
    occurred_at: float


# carts: keyed by cart id


@dataclass(frozen=True, slots=True)
class CartChanged(DomainEvent):
    """Any change to a cart; `lines` are (sku, quantity), `holds` (sku, expires_at)."""

    topic: ClassVar[str] = "cart"
    key_field: ClassVar[str] = "cart_id"
    cart_id: str
    customer_id: str | None
    version: int
    lines: tuple[tuple[str, int], ...]
    holds: tuple[tuple[str, float], ...]
    coupon_code: str | None
    occurred_at: float


# orders: keyed by order number. `lines` are (sku, quantity, unit_price_minor).


@dataclass(frozen=True, slots=True)
class OrderEvent(DomainEvent):
    topic: ClassVar[str] = "order"
    key_field: ClassVar[str] = "number"
    number: str
    customer_id: str | None
    email: str
    status: str
    total_minor: int
    currency: str
    occurred_at: float


@dataclass(frozen=True, slots=True)
class OrderPlaced(OrderEvent):
    lines: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class OrderPaid(OrderEvent):
    lines: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class OrderPaymentFailed(OrderEvent):
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderCancelled(OrderEvent):
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderFulfilling(OrderEvent):
    pass


@dataclass(frozen=True, slots=True)
class OrderShipped(OrderEvent):
    carrier: str = ""
    tracking_number: str = ""


@dataclass(frozen=True, slots=True)
class OrderDelivered(OrderEvent):
    pass


@dataclass(frozen=True, slots=True)
class ReturnRequested(OrderEvent):
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReturnApproved(OrderEvent):
    pass


@dataclass(frozen=True, slots=True)
class ReturnReceived(OrderEvent):
    pass


@dataclass(frozen=True, slots=True)
class OrderRefunded(OrderEvent):
    refunded_minor: int = 0


def event_type(event: DomainEvent) -> str:
    """The outbox `type`: the class name, e.g. "StockReserved"."""
    return type(event).__name__


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def event_payload(event: DomainEvent) -> dict[str, Any]:
    """The event's fields as a JSON-ready dict (tuples become lists, enums their values)."""
    return {name: _jsonable(getattr(event, name)) for name in _field_names(type(event))}
