"""PaymentGateway against localstripe (the shared test stack's), through the stripe SDK.

These pin down what localstripe does (the saga is written against it): see actors/payments.py.
"""
from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from actors.domain.errors import NotFound, PaymentRefused, Unavailable
from actors.domain.payment_events import parse_event
from actors.payments import PaymentGateway
from cluster.local import register_localstripe_webhook
from tests.conftest import async_wait_for

pytestmark = pytest.mark.integration

VISA, DECLINE_ON_CHARGE, THREE_D_SECURE = "4242424242424242", "4000000000000341", "4000002500003155"


@pytest.fixture
async def gateway(stack):
    g = PaymentGateway(stack.surge.stripe_api_key, stack.urls.stripe, max_network_retries=0)
    yield g
    await g.aclose()


def key() -> str:
    return f"test-{uuid.uuid4()}"


async def pay(gateway: PaymentGateway, number: str, amount: int = 2599, **kwargs):
    pm = await gateway.create_test_payment_method(number, 12, 2030, "123")
    return await gateway.create_intent(amount_minor=amount, currency="usd", idempotency_key=key(),
                                       metadata={"order_number": f"ORD-{uuid.uuid4().int % 10**9}"},
                                       payment_method=pm, **kwargs)


async def test_4242_is_charged_at_creation_and_succeeds(gateway):
    intent = await pay(gateway, VISA, 2599)
    assert (intent.status, intent.amount_minor, intent.currency, intent.amount_received_minor) == ("succeeded", 2599, "USD", 2599)
    assert intent.metadata["order_number"].startswith("ORD-") and intent.failure_message is None
    again = await gateway.retrieve_intent(intent.id)
    assert again.status == "succeeded" and again.metadata == intent.metadata


async def test_0341_is_a_declined_intent_with_the_message_not_an_exception(gateway):
    intent = await pay(gateway, DECLINE_ON_CHARGE)
    assert intent.id.startswith("pi_")
    assert intent.status == "requires_payment_method" and intent.declined
    assert intent.failure_message == "Your card was declined."
    assert intent.amount_received_minor == 0
    # the intent the decline names is the one the provider keeps
    assert (await gateway.retrieve_intent(intent.id)).failure_message == "Your card was declined."


async def test_a_decline_at_a_later_confirm_is_a_declined_intent_too(gateway):
    pm = await gateway.create_test_payment_method(DECLINE_ON_CHARGE, 12, 2030, "123")
    pending = await gateway.create_intent(amount_minor=300, currency="usd", idempotency_key=key(), metadata={},
                                          payment_method=pm, confirm=False)
    declined = await gateway.confirm_intent(pending.id, key())
    assert (declined.id, declined.status, declined.failure_message) == (
        pending.id, "requires_payment_method", "Your card was declined.")


async def test_3155_requires_action_then_passing_the_challenge_succeeds(gateway):
    intent = await pay(gateway, THREE_D_SECURE)
    assert intent.status == "requires_action" and intent.needs_action
    assert intent.next_action_url is None  # localstripe: use_stripe_sdk, no redirect
    assert intent.client_secret and intent.amount_received_minor == 0
    done = await gateway.complete_test_authentication(intent.id, intent.client_secret, success=True)
    assert done.status == "succeeded" and done.amount_received_minor == intent.amount_minor


async def test_3155_failing_the_challenge_leaves_the_intent_needing_a_payment_method(gateway):
    intent = await pay(gateway, THREE_D_SECURE)
    failed = await gateway.complete_test_authentication(intent.id, intent.client_secret, success=False)
    assert failed.status == "requires_payment_method"
    assert failed.failure_message == "The provided PaymentMethod has failed authentication."


async def test_manual_capture_holds_then_captures(gateway):
    intent = await pay(gateway, VISA, 5000, capture_method="manual")
    assert (intent.status, intent.capture_method, intent.amount_received_minor) == ("requires_capture", "manual", 0)
    captured = await gateway.capture_intent(intent.id, None, key())
    assert captured.status == "succeeded" and captured.amount_received_minor == 5000
    with pytest.raises(PaymentRefused):  # nothing left to capture
        await gateway.capture_intent(intent.id, None, key())


async def test_confirm_later_and_cancel(gateway):
    pm = await gateway.create_test_payment_method(VISA, 12, 2030, "123")
    pending = await gateway.create_intent(amount_minor=700, currency="eur", idempotency_key=key(), metadata={},
                                          payment_method=pm, confirm=False)
    assert pending.status == "requires_confirmation" and pending.currency == "EUR"
    confirmed = await gateway.confirm_intent(pending.id, key())
    assert confirmed.status == "succeeded"
    held = await pay(gateway, VISA, 900, capture_method="manual")
    cancelled = await gateway.cancel_intent(held.id, key())
    assert cancelled.status == "canceled"


async def test_refund_returns_its_id_and_refunds_that_amount(gateway, stack):
    intent = await pay(gateway, VISA, 4000)
    refund_id, status = await gateway.refund(intent.id, 1500, key())
    assert refund_id.startswith("re_") and status == "succeeded"
    client = stripe.StripeClient(stack.surge.stripe_api_key, base_addresses={"api": stack.urls.stripe},
                                 http_client=stripe.HTTPXClient())
    refund = await client.v1.refunds.retrieve_async(refund_id)
    assert (refund.amount, refund.payment_intent) == (1500, intent.id)


async def test_refund_of_a_declined_payment_is_refused(gateway):
    intent = await pay(gateway, DECLINE_ON_CHARGE)
    with pytest.raises(PaymentRefused):
        await gateway.refund(intent.id, 100, key())


async def test_unknown_intent_is_not_found_and_an_unreachable_provider_is_unavailable(gateway):
    with pytest.raises(NotFound):
        await gateway.retrieve_intent("pi_doesnotexist")
    from tests.conftest import free_port

    down = PaymentGateway("sk_test_x", f"http://127.0.0.1:{free_port()}", max_network_retries=0, timeout_s=2)
    try:
        with pytest.raises(Unavailable) as err:
            await down.create_intent(amount_minor=100, currency="usd", idempotency_key=key(), metadata={},
                                     payment_method="pm_card_visa")
        assert err.value.status == 503
    finally:
        await down.aclose()


# --- webhooks -----------------------------------------------------------------------------------
class Receiver:
    """A loopback HTTP endpoint that records every POST (raw body and Stripe-Signature)."""

    def __init__(self):
        self.bodies: list[tuple[bytes, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.bodies.append((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(stack):
    r = Receiver()
    name, secret = f"test-{uuid.uuid4().hex[:8]}", "whsec_test_" + uuid.uuid4().hex
    register_localstripe_webhook(stack.urls.stripe, name, r.url, secret)
    r.secret = secret
    yield r
    # localstripe cannot forget an endpoint: narrow it to an event type that never happens
    register_localstripe_webhook(stack.urls.stripe, name, r.url, secret, events=["surge.test.never"])
    r.close()


async def test_localstripe_delivers_signed_webhooks_that_verify(stack, receiver):
    gateway = PaymentGateway(stack.surge.stripe_api_key, stack.urls.stripe, webhook_secret=receiver.secret)
    try:
        paid = await pay(gateway, VISA, 1234)
        declined = await pay(gateway, DECLINE_ON_CHARGE, 4321)

        async def events():
            verified = [parse_event(gateway.verify_webhook(body, sig)) for body, sig in list(receiver.bodies)]
            by_intent = {e.intent_id: e for e in verified}
            return by_intent if {paid.id, declined.id} <= by_intent.keys() else None

        by_intent = await async_wait_for(events, timeout_s=20, what="both webhooks")
        ok, failed = by_intent[paid.id], by_intent[declined.id]
        assert (ok.type, ok.status, ok.amount_minor, ok.currency) == ("payment_intent.succeeded", "succeeded", 1234, "USD")
        assert ok.metadata == paid.metadata and ok.event_id.startswith("evt_")
        assert (failed.type, failed.status, failed.failure_message) == (
            "payment_intent.payment_failed", "requires_payment_method", "Your card was declined.")
        # the bodies are signed with the endpoint's secret: another secret does not verify them
        from actors.domain.errors import InvalidSignature

        other = PaymentGateway("sk_test_x", stack.urls.stripe, webhook_secret="whsec_someone_else_entirely")
        with pytest.raises(InvalidSignature):
            other.verify_webhook(*receiver.bodies[0])
        await other.aclose()
    finally:
        await gateway.aclose()


async def test_bring_up_keeps_surges_webhook_secret_private_in_the_data_dir(stack):
    path = stack.data_dir / "stripe_webhook_secret"
    assert path.read_text().startswith("whsec_") and (path.stat().st_mode & 0o077) == 0
    assert stack.stripe_webhook_secret() == path.read_text().strip()
