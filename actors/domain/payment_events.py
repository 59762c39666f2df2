"""Stripe webhook events as Surge reads them: one pure dataclass, whatever the event's object.

`parse_event(event)` takes the verified JSON of a webhook (`PaymentGateway.verify_webhook`) and
keeps what the checkout saga decides on. It never raises on an unknown type: the caller records the
event id and ignores what it does not handle (Stripe sends many types; localstripe a few).

What each type carries (`intent_id` is always the PaymentIntent the event concerns, or None):
- `payment_intent.*` (succeeded, payment_failed, requires_action, canceled, amount_capturable_updated,
  processing): the intent's id, status, amount, currency, metadata, and the decline message from
  `last_payment_error` (payment_failed).
- `charge.*` (succeeded, failed, refunded, captured): the charge's payment_intent; for
  `charge.refunded` the amount is the charge's total `amount_refunded`.
- `refund.*` / `charge.refund.updated`: the refund's payment_intent, its status and amount;
  `object_id` is the refund id.
localstripe sends only `payment_intent.succeeded` and `payment_intent.payment_failed` of these (see
`actors/payments.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class PaymentEvent:
    event_id: str
    type: str
    intent_id: str | None
    status: str | None
    amount_minor: int | None
    currency: str | None  # upper-case ISO 4217, as Surge stores it (Stripe sends lower case)
    metadata: dict = field(default_factory=dict)
    failure_message: str | None = None
    object_id: str | None = None  # the event's object (intent, charge or refund id)
    created: int | None = None  # the event's creation time, epoch seconds (ordering hint only)

    @property
    def is_intent_event(self) -> bool:
        return self.type.startswith("payment_intent.")


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _intent_ref(value: Any) -> str | None:
    """A payment_intent field: an id, or an expanded object with an id."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value if isinstance(value, str) and value else None


def parse_event(event: Mapping[str, Any]) -> PaymentEvent:
    """A verified Stripe event (the webhook's JSON) → PaymentEvent. Raises ValueError only when the
    payload is not an event at all (no id or type)."""
    event_id, type_ = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(type_, str):
        raise ValueError("not a Stripe event: id and type are required")
    obj = (event.get("data") or {}).get("object") or {}
    kind = obj.get("object")
    currency = obj.get("currency")
    currency = currency.upper() if isinstance(currency, str) else None
    metadata = dict(obj.get("metadata") or {})
    common = {"event_id": event_id, "type": type_, "currency": currency, "metadata": metadata,
              "object_id": obj.get("id"), "created": _int(event.get("created"))}

    if kind == "payment_intent":
        error = obj.get("last_payment_error") or {}
        return PaymentEvent(intent_id=obj.get("id"), status=obj.get("status"), amount_minor=_int(obj.get("amount")),
                            failure_message=error.get("message"), **common)
    if kind == "charge":
        amount = obj.get("amount_refunded") if type_ == "charge.refunded" else obj.get("amount")
        return PaymentEvent(intent_id=_intent_ref(obj.get("payment_intent")), status=obj.get("status"),
                            amount_minor=_int(amount), failure_message=obj.get("failure_message"), **common)
    if kind == "refund":
        return PaymentEvent(intent_id=_intent_ref(obj.get("payment_intent")), status=obj.get("status"),
                            amount_minor=_int(obj.get("amount")), failure_message=obj.get("failure_reason"), **common)
    return PaymentEvent(intent_id=None, status=obj.get("status"), amount_minor=_int(obj.get("amount")), **common)
