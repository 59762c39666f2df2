"""PaymentGateway against the Stripe-compatible stub (tests/support/stripe_stub.py): what localstripe
cannot show — idempotency keys honoured, Stripe's decline shape, over-refunds refused, webhooks re-sent."""
from __future__ import annotations

import uuid

import pytest

from actors.domain.errors import PaymentRefused, Unavailable
from actors.domain.payment_events import parse_event
from actors.payments import PaymentGateway
from tests.integration.test_payments import Receiver
from tests.support.stripe_stub import StripeStub

pytestmark = pytest.mark.integration

VISA, DECLINE_ON_CHARGE = "4242424242424242", "4000000000000341"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
async def stub_gateway(receiver):
    with StripeStub(webhook_url=receiver.url) as stub:
        g = PaymentGateway("sk_test_stub", stub.url, webhook_secret=stub.webhook_secret, max_network_retries=0)
        yield stub, g
        await g.aclose()


async def test_the_same_idempotency_key_returns_the_same_intent(stub_gateway):
    stub, gateway = stub_gateway
    pm = await gateway.create_test_payment_method(VISA, 12, 2030, "123")
    k = f"order-{uuid.uuid4()}"
    args = dict(amount_minor=2500, currency="usd", idempotency_key=k, metadata={"order_number": "ORD-1"}, payment_method=pm)
    first, second = await gateway.create_intent(**args), await gateway.create_intent(**args)
    assert first == second and first.status == "succeeded"
    assert stub.created_intents() == 2 and len(stub.intents) == 1  # two requests, one intent
    assert len(stub.events_for(first.id, "payment_intent.succeeded")) == 1


async def test_a_key_reused_with_other_parameters_is_refused(stub_gateway):
    stub, gateway = stub_gateway
    pm = await gateway.create_test_payment_method(VISA, 12, 2030, "123")
    k = f"order-{uuid.uuid4()}"
    await gateway.create_intent(amount_minor=2500, currency="usd", idempotency_key=k, metadata={}, payment_method=pm)
    with pytest.raises(PaymentRefused):
        await gateway.create_intent(amount_minor=9999, currency="usd", idempotency_key=k, metadata={}, payment_method=pm)
    assert len(stub.intents) == 1


async def test_a_stripe_style_decline_is_a_declined_intent_and_replays_for_the_same_key(stub_gateway):
    stub, gateway = stub_gateway
    pm = await gateway.create_test_payment_method(DECLINE_ON_CHARGE, 12, 2030, "123")
    args = dict(amount_minor=800, currency="usd", idempotency_key=f"order-{uuid.uuid4()}", metadata={}, payment_method=pm)
    first = await gateway.create_intent(**args)
    again = await gateway.create_intent(**args)
    assert first.declined and first.failure_message == "Your card was declined."
    assert again.id == first.id and len(stub.intents) == 1


async def test_refunds_are_capped_at_what_was_captured(stub_gateway):
    stub, gateway = stub_gateway
    pm = await gateway.create_test_payment_method(VISA, 12, 2030, "123")
    intent = await gateway.create_intent(amount_minor=1000, currency="usd", idempotency_key=str(uuid.uuid4()),
                                         metadata={}, payment_method=pm)
    assert (await gateway.refund(intent.id, 600, "refund-a"))[1] == "succeeded"
    assert await gateway.refund(intent.id, 600, "refund-a") == (await gateway.refund(intent.id, 600, "refund-a"))
    with pytest.raises(PaymentRefused):
        await gateway.refund(intent.id, 401, "refund-b")


async def test_a_webhook_can_be_re_sent_and_each_copy_verifies_as_the_same_event(stub_gateway, receiver):
    from tests.conftest import async_wait_for

    stub, gateway = stub_gateway
    pm = await gateway.create_test_payment_method(VISA, 12, 2030, "123")
    intent = await gateway.create_intent(amount_minor=4200, currency="usd", idempotency_key=str(uuid.uuid4()),
                                         metadata={}, payment_method=pm)
    [event] = stub.events_for(intent.id, "payment_intent.succeeded")
    assert stub.deliver(event["id"], times=3) == [200, 200, 200]

    async def four_copies():
        return len(receiver.bodies) >= 4 or None  # the first delivery plus three retries

    await async_wait_for(four_copies, timeout_s=10, what="four deliveries")
    parsed = [parse_event(gateway.verify_webhook(body, sig)) for body, sig in receiver.bodies]
    assert {(e.event_id, e.intent_id, e.amount_minor) for e in parsed} == {(event["id"], intent.id, 4200)}


async def test_an_outage_is_unavailable(stub_gateway):
    stub, gateway = stub_gateway
    stub.outage = True
    with pytest.raises(Unavailable):
        await gateway.retrieve_intent("pi_anything")


async def test_every_call_reports_its_operation_and_outcome(receiver):
    calls: list[tuple[str, str]] = []
    with StripeStub(webhook_url=receiver.url) as stub:
        gateway = PaymentGateway("sk_test_stub", stub.url, max_network_retries=0,
                                 record=lambda op, outcome, seconds: calls.append((op, outcome)) if seconds >= 0 else None)
        try:
            ok = await gateway.create_test_payment_method(VISA, 12, 2030, "123")
            bad = await gateway.create_test_payment_method(DECLINE_ON_CHARGE, 12, 2030, "123")
            for pm in (ok, bad):
                await gateway.create_intent(amount_minor=100, currency="usd", idempotency_key=str(uuid.uuid4()),
                                            metadata={}, payment_method=pm)
            stub.outage = True
            with pytest.raises(Unavailable):
                await gateway.retrieve_intent("pi_x")
        finally:
            await gateway.aclose()
    assert calls == [("create_intent", "succeeded"), ("create_intent", "requires_payment_method"),
                     ("retrieve_intent", "unavailable")]
