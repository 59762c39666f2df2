"""PaymentGateway without a provider: Stripe's webhook signature scheme on the raw body, the card-data guard, and
reading intents (Stripe's and localstripe's shapes)."""
import hashlib
import hmac
import json
import time

import pytest

from actors.domain.errors import InvalidSignature
from actors.payments import PaymentGateway

pytestmark = pytest.mark.unit

SECRET = "whsec_test_known_secret"
BODY = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                   "data": {"object": {"id": "pi_1", "object": "payment_intent"}}}, indent=2).encode()


def sign(body: bytes, secret: str = SECRET, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), b"%d.%s" % (t, body), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@pytest.fixture
async def gateway():
    g = PaymentGateway("sk_test_unit", "http://127.0.0.1:9", webhook_secret=SECRET)
    yield g
    await g.aclose()


def test_a_correctly_signed_body_verifies_and_parses(gateway):
    assert gateway.verify_webhook(BODY, sign(BODY))["id"] == "evt_1"


def test_one_good_signature_among_several_is_enough(gateway):
    # Stripe sends several v1 signatures while an endpoint's secret is being rolled
    header = sign(BODY)
    t = header.split(",")[0]
    assert gateway.verify_webhook(BODY, f"{t},v1={'0' * 64},{header.split(',')[1]}")["type"] == "payment_intent.succeeded"


def test_a_signature_made_with_another_secret_is_refused(gateway):
    with pytest.raises(InvalidSignature) as err:
        gateway.verify_webhook(BODY, sign(BODY, secret="whsec_forged"))
    assert err.value.status == 400


def test_a_tampered_body_is_refused(gateway):
    tampered = BODY.replace(b"pi_1", b"pi_2")
    with pytest.raises(InvalidSignature):
        gateway.verify_webhook(tampered, sign(BODY))


def test_a_stale_timestamp_is_refused_even_with_a_valid_signature(gateway):
    old = int(time.time()) - 301
    with pytest.raises(InvalidSignature) as err:
        gateway.verify_webhook(BODY, sign(BODY, t=old))
    assert "tolerance" in err.value.detail


def test_a_missing_or_garbled_header_is_refused(gateway):
    for header in (None, "", "garbage", f"t=notanumber,v1=abc", f"t={int(time.time())}"):
        with pytest.raises(InvalidSignature):
            gateway.verify_webhook(BODY, header)


async def test_without_a_configured_secret_every_webhook_is_refused():
    g = PaymentGateway("sk_test_unit", "http://127.0.0.1:9", webhook_secret=None)
    try:
        with pytest.raises(InvalidSignature):
            g.verify_webhook(BODY, sign(BODY))
    finally:
        await g.aclose()


async def test_card_fields_are_refused_with_a_live_key_or_against_real_stripe():
    from actors.domain.errors import CardDataNotAllowed

    live = PaymentGateway("sk_live_abc", "http://127.0.0.1:9")
    real = PaymentGateway("sk_test_abc", None)
    try:
        assert not live.card_fields_allowed and not real.card_fields_allowed
        for g in (live, real):
            with pytest.raises(CardDataNotAllowed) as err:
                await g.create_test_payment_method("4242424242424242", 12, 2030, "123")
            assert err.value.status == 403
    finally:
        await live.aclose()
        await real.aclose()


def test_intent_from_reads_a_real_stripe_redirect_and_amount_received():
    from actors.payments import intent_from

    i = intent_from({"id": "pi_1", "status": "requires_action", "amount": 1000, "currency": "usd", "amount_received": 0,
                     "capture_method": "automatic", "client_secret": "s",
                     "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3ds"}}})
    assert i.needs_action and i.next_action_url == "https://hooks.stripe.com/3ds" and i.currency == "USD"


def test_intent_from_derives_amount_received_from_a_localstripe_charge():
    from actors.payments import intent_from

    base = {"id": "pi_1", "amount": 1000, "currency": "usd"}
    captured = intent_from({**base, "status": "succeeded", "latest_charge": {"amount": 1000, "captured": True, "status": "succeeded"}})
    held = intent_from({**base, "status": "requires_capture", "latest_charge": {"amount": 1000, "captured": False, "status": "succeeded"}})
    assert (captured.amount_received_minor, held.amount_received_minor) == (1000, 0)


def test_a_decline_message_counts_only_while_the_intent_needs_a_new_payment_method():
    from actors.payments import intent_from

    error = {"message": "Your card was declined."}
    declined = intent_from({"id": "pi_1", "amount": 1, "currency": "usd", "status": "requires_payment_method",
                            "last_payment_error": error})
    retried = intent_from({"id": "pi_1", "amount": 1, "currency": "usd", "status": "succeeded", "last_payment_error": error})
    assert declined.declined and declined.failure_message == "Your card was declined."
    assert not retried.declined and retried.failure_message is None


def test_the_module_level_check_needs_only_the_secret():
    from actors.payments import verify_webhook

    assert verify_webhook(BODY, sign(BODY), SECRET)["id"] == "evt_1"
    with pytest.raises(InvalidSignature):
        verify_webhook(BODY, sign(BODY), "whsec_other")
    with pytest.raises(InvalidSignature):
        verify_webhook(b"not json", sign(b"not json"), SECRET)
