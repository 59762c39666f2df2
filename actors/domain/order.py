"""The order's state machine: which status may follow which. Pure.

pending_payment → paid → fulfilling → shipped → delivered → return_requested → return_approved →
return_received → refunded; pending_payment → cancelled (payment failed, timed out, or the shopper
cancelled); paid → cancelled (before fulfilment: refunded in full and restocked); paid/fulfilling/
shipped/delivered → refunded (an admin refund of the whole capture).
A return may be requested within `RETURN_WINDOW_S` of delivery.
"""
from __future__ import annotations

from enum import StrEnum

from actors.domain.errors import InvalidTransition, ReturnWindowClosed

RETURN_WINDOW_S = 30 * 24 * 3600


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    FULFILLING = "fulfilling"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURN_REQUESTED = "return_requested"
    RETURN_APPROVED = "return_approved"
    RETURN_RECEIVED = "return_received"
    REFUNDED = "refunded"


S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED}),
    S.PAID: frozenset({S.FULFILLING, S.CANCELLED, S.REFUNDED}),
    S.FULFILLING: frozenset({S.SHIPPED, S.REFUNDED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.REFUNDED}),
    S.DELIVERED: frozenset({S.RETURN_REQUESTED, S.REFUNDED}),
    S.RETURN_REQUESTED: frozenset({S.RETURN_APPROVED, S.DELIVERED}),  # back to delivered = return rejected
    S.RETURN_APPROVED: frozenset({S.RETURN_RECEIVED}),
    S.RETURN_RECEIVED: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}

# statuses in which the money was taken (the order counts as a sale)
PAID_STATUSES = frozenset({S.PAID, S.FULFILLING, S.SHIPPED, S.DELIVERED, S.RETURN_REQUESTED,
                           S.RETURN_APPROVED, S.RETURN_RECEIVED})
CUSTOMER_CANCELLABLE = frozenset({S.PENDING_PAYMENT, S.PAID})


def can_transition(current: OrderStatus | str, target: OrderStatus | str) -> bool:
    return OrderStatus(target) in TRANSITIONS[OrderStatus(current)]


def check_transition(current: OrderStatus | str, target: OrderStatus | str) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(f"An order that is {OrderStatus(current).value} cannot become {OrderStatus(target).value}.",
                                status=str(current), target=str(target))


def check_return_window(delivered_at: float | None, now: float) -> None:
    if delivered_at is None or now - delivered_at > RETURN_WINDOW_S:
        raise ReturnWindowClosed()


def format_order_number(n: int) -> str:
    return f"ORD-{n}"
