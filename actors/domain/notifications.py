"""Customer notifications for order events: which events notify, and the plain-text templates.

Pure: an order event's type and payload in, a `Notification` out (or None for events that notify
nobody). Payload fields, as `OrderPipeline` emits them: `number`, `email`, `total_minor`,
`currency`; `OrderShipped` adds `carrier` and `tracking_number`; `OrderRefunded` may add
`refunded_minor`, the total refunded so far (else the order total is quoted). Money is formatted from integer minor units, never floats.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

KINDS = {
    "OrderPlaced": "order_placed",
    "OrderPaid": "order_paid",
    "OrderShipped": "order_shipped",
    "OrderDelivered": "order_delivered",
    "OrderRefunded": "order_refunded",
    "OrderCancelled": "order_cancelled",
}

# ISO 4217 minor-unit exponents that are not 2
_EXPONENT = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}
_SYMBOL = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$"}


@dataclass(frozen=True)
class Notification:
    kind: str
    to_email: str
    subject: str
    body: str
    order_number: str | None


def format_money(amount_minor: int, currency: str) -> str:
    """2599, "USD" → "$25.99"; 123456789, "EUR" → "€1,234,567.89"; 500, "JPY" → "¥500"; -150 → "-$1.50"."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError("amount_minor must be an int")
    code = currency.upper()
    exponent = _EXPONENT.get(code, 2)
    sign, value = ("-" if amount_minor < 0 else ""), abs(amount_minor)
    major, minor = divmod(value, 10 ** exponent) if exponent else (value, 0)
    text = f"{major:,}" + (f".{minor:0{exponent}d}" if exponent else "")
    symbol = _SYMBOL.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


def _money(payload: Mapping[str, Any], field: str = "total_minor") -> str:
    return format_money(int(payload[field]), str(payload["currency"]))


def render(event_type: str, payload: Mapping[str, Any]) -> Notification | None:
    """The notification for an order event, or None when the event notifies nobody.

    Raises KeyError/ValueError when a notifying event lacks a field it needs (a producer bug)."""
    kind = KINDS.get(event_type)
    if kind is None:
        return None
    number, email = str(payload["number"]), str(payload["email"])
    total = _money(payload)
    if kind == "order_placed":
        subject = f"We received your order {number}"
        lines = [f"Thank you for your order {number}.", "", f"Order total: {total}", "",
                 "We will email you again as soon as your payment is confirmed."]
    elif kind == "order_paid":
        subject = f"Payment received for order {number}"
        lines = [f"We have received your payment of {total} for order {number}.", "",
                 "We are preparing your order and will let you know when it ships."]
    elif kind == "order_shipped":
        subject = f"Your order {number} has shipped"
        lines = [f"Good news: order {number} is on its way.", "",
                 f"Carrier: {payload['carrier']}", f"Tracking number: {payload['tracking_number']}"]
    elif kind == "order_delivered":
        subject = f"Your order {number} was delivered"
        lines = [f"Order {number} has been delivered. We hope you enjoy it.", "",
                 "If something is not right, you can request a return from your order page."]
    elif kind == "order_refunded":
        amount = _money(payload, "refunded_minor") if payload.get("refunded_minor") is not None else total
        subject = f"Refund issued for order {number}"
        lines = [f"We have refunded {amount} for order {number} to your original payment method.", "",
                 "Depending on your bank, it can take a few days to appear on your statement."]
    else:  # order_cancelled
        subject = f"Your order {number} was cancelled"
        lines = [f"Order {number} ({total}) has been cancelled.", "",
                 "If you were charged, the amount will be returned to your payment method."]
    body = "\n".join(lines + ["", "— Surge"]) + "\n"
    return Notification(kind=kind, to_email=email, subject=subject, body=body, order_number=number)
