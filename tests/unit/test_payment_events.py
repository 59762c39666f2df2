import pytest

from actors.domain.payment_events import parse_event

pytestmark = pytest.mark.unit


def _intent_event(type_, status, **extra):
    return {"id": "evt_1", "object": "event", "type": type_, "created": 1764100000,
            "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": status, "amount": 2599,
                                "currency": "usd", "metadata": {"order_number": "ORD-100001"}, **extra}}}


def test_succeeded_intent_event_carries_amount_currency_and_metadata():
    ev = parse_event(_intent_event("payment_intent.succeeded", "succeeded"))
    assert (ev.event_id, ev.type, ev.intent_id, ev.status, ev.amount_minor, ev.currency) == (
        "evt_1", "payment_intent.succeeded", "pi_1", "succeeded", 2599, "USD")
    assert ev.metadata == {"order_number": "ORD-100001"}
    assert ev.failure_message is None and ev.is_intent_event and ev.created == 1764100000


def test_failed_intent_event_carries_the_decline_message():
    ev = parse_event(_intent_event("payment_intent.payment_failed", "requires_payment_method",
                                   last_payment_error={"code": "card_declined", "message": "Your card was declined."}))
    assert ev.status == "requires_payment_method" and ev.failure_message == "Your card was declined."


def test_charge_refunded_names_the_intent_and_the_total_refunded():
    ev = parse_event({"id": "evt_2", "type": "charge.refunded", "data": {"object": {
        "id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount": 5000, "amount_refunded": 1200,
        "currency": "eur", "status": "succeeded"}}})
    assert (ev.intent_id, ev.amount_minor, ev.currency, ev.object_id) == ("pi_1", 1200, "EUR", "ch_1")
    assert not ev.is_intent_event


def test_refund_event_names_the_intent_and_the_refund():
    ev = parse_event({"id": "evt_3", "type": "refund.updated", "data": {"object": {
        "id": "re_1", "object": "refund", "payment_intent": {"id": "pi_9"}, "amount": 300, "currency": "usd",
        "status": "failed", "failure_reason": "expired_or_canceled_card"}}})
    assert (ev.intent_id, ev.object_id, ev.status, ev.amount_minor, ev.failure_message) == (
        "pi_9", "re_1", "failed", 300, "expired_or_canceled_card")


def test_unknown_event_types_parse_without_an_intent():
    ev = parse_event({"id": "evt_4", "type": "customer.created", "data": {"object": {"id": "cus_1", "object": "customer"}}})
    assert ev.intent_id is None and ev.amount_minor is None and ev.type == "customer.created"


def test_a_payload_that_is_not_an_event_is_refused():
    with pytest.raises(ValueError):
        parse_event({"data": {}})
