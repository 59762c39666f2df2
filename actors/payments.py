"""The payment gateway: Stripe PaymentIntents and refunds through the official SDK, async end to end.

`PaymentGateway` speaks to Stripe with real keys, and locally to localstripe (`api_base`, from
`STRIPE_API_BASE` / the embedded one `surge up` starts). It uses `stripe.StripeClient`'s `*_async`
methods over httpx, so no call blocks the event loop of the actor or replica that owns it.

Contract
- Money is integers in minor units; currencies go out lower case (Stripe's form) and come back upper
  case (Surge's form).
- Every mutating call carries the caller's idempotency key. Stripe honours it (same key, same
  result for 24 h); **localstripe ignores it**, so the caller persists its keys and the intent id it
  got back, and retrieves rather than re-creates (the reconciler re-fetches intents left pending).
- A card declined when charged is a *result*, not an exception: `create_intent` / `confirm_intent`
  return an Intent with status `requires_payment_method` and `failure_message` set to the
  provider's message ("Your card was declined."). The saga records it and, at the edge, answers
  with `PaymentDeclined(intent.failure_message)` (402). Reason: the intent exists at the provider
  (its id must be recorded; a later webhook names it), and a decline is an expected outcome.
- The provider unreachable, timing out, rate limiting, 5xx, or refusing Surge's credentials →
  `Unavailable` (503; retry with the same idempotency key). A request the provider refuses for the
  payment's state (capture of an intent not awaiting capture, refund of a failed payment, a reused
  key with other parameters) → `PaymentRefused` (409); an unknown intent → `NotFound`.
- `verify_webhook` checks Stripe's signature scheme on the raw body (HMAC-SHA256 of
  "<t>.<body>" with the endpoint secret, header `t=…,v1=…`) and the timestamp's age (tolerance,
  300 s by default); failures raise `InvalidSignature` (400). It returns the event as a plain dict,
  for `actors.domain.payment_events.parse_event`.
- `create_test_payment_method` sends raw card fields to the provider. It is allowed only when the
  provider is the local test server (an `api_base` is set and the key is not a live key
  `sk_live_…`/`rk_live_…`); otherwise `CardDataNotAllowed`. Check the fields first with
  `actors.domain.cards.validate_card`.

What localstripe (1.15.10) does, measured against it through this gateway (tests/integration/test_payments.py)
- Creating with `confirm=True` and a payment method charges at once:
  * 4242 4242 4242 4242 → `succeeded` (automatic capture) or `requires_capture` (manual). It has no
    `amount_received` field; the gateway derives `amount_received_minor` from the intent's charge.
  * 4000 0000 0000 0341 → the API answers 402 `card_declined` "Your card was declined." *but the
    intent exists* (status `requires_payment_method`, `last_payment_error.message` = that text). The
    error body names only the charge; the gateway follows charge → intent and returns the declined
    Intent. (Real Stripe puts the intent in the error body; both paths are handled.)
  * 4000 0000 0000 0002 succeeds when charged (only attaching it to a customer is declined).
  * 4000 0025 0000 3155 → `requires_action`, `next_action` = `{"type": "use_stripe_sdk", …}`, no
    redirect URL (`next_action_url` is None; with real Stripe and a `redirect_to_url` action it is
    that URL). No webhook is sent for `requires_action`.
- Completing 3-D Secure: localstripe's stand-in for the challenge is
  `POST /v1/payment_intents/<id>/_authenticate` with form fields `client_secret=<the intent's
  client_secret>` and `success=true|false` (its Stripe.js shim does this for `handleCardAction`; a
  publishable key `key=pk_…` or the secret key authenticates). `success=true` charges the card →
  `succeeded` (or `requires_capture`) and sends `payment_intent.succeeded`; `success=false` →
  `requires_payment_method` with `last_payment_error.message` "The provided PaymentMethod has failed
  authentication." and **no webhook**. `complete_test_authentication` does this call (test mode only).
- Confirm with a payment method, `automatic_payment_methods`, `description`, `return_url`,
  `cancellation_reason` are rejected (400/500): the method is set at creation and nothing else is sent.
- Manual capture: `capture_intent` (optionally a smaller amount; localstripe refunds the rest) →
  `succeeded` and a `payment_intent.succeeded` webhook.
- Cancel: allowed from requires_payment_method / requires_confirmation / requires_action /
  requires_capture → `canceled`; no webhook.
- Refunds: status `succeeded` at once; **no webhook at all** (no `charge.refunded`, no `refund.*`);
  refunds beyond the captured amount are accepted (Surge must cap them itself).
- Webhooks: only `payment_intent.succeeded` and `payment_intent.payment_failed` (for payments),
  each sent **once**, about 1 s after the change, to every endpoint registered with
  `POST /_config/webhooks/<name>` (form fields `url`, `secret`, optional `events`); a failed
  delivery is logged and dropped, never retried. Registrations live in localstripe's memory only:
  after a restart of localstripe they are gone (`cluster/local.py` registers at every bring-up).
  The body is the event JSON (`id` evt_…, `type`, `created`, `data.object` = the intent as it was
  when the event was made, `api_version` 2017-08-15), signed exactly as Stripe signs:
  `Stripe-Signature: t=<event.created>,v1=<hex hmac>`.
"""
from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stripe

from actors.domain.errors import (CardDataNotAllowed, InvalidSignature, NotFound, PaymentRefused, SurgeError,
                                  Unavailable)

log = logging.getLogger("surge.payments")

DEFAULT_TOLERANCE_S = 300


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent as the saga needs it."""

    id: str
    status: str  # requires_payment_method | requires_confirmation | requires_action | processing |
    #              requires_capture | succeeded | canceled
    amount_minor: int
    currency: str  # upper case
    amount_received_minor: int
    capture_method: str
    client_secret: str | None
    next_action_url: str | None
    failure_message: str | None
    metadata: dict = field(default_factory=dict)

    @property
    def declined(self) -> bool:
        return self.status == "requires_payment_method" and self.failure_message is not None

    @property
    def needs_action(self) -> bool:
        return self.status == "requires_action"


def is_live_key(api_key: str) -> bool:
    return api_key.startswith(("sk_live_", "rk_live_"))


def intent_from(obj: dict[str, Any]) -> Intent:
    """A PaymentIntent's JSON (Stripe's or localstripe's) → Intent."""
    status = obj.get("status") or ""
    received = obj.get("amount_received")
    if received is None:  # localstripe: derive it from the charge
        charge = obj.get("latest_charge")
        captured = isinstance(charge, dict) and charge.get("captured") and charge.get("status") == "succeeded"
        received = int(charge.get("amount", 0)) if captured else 0
    action = obj.get("next_action") or {}
    url = None
    if action.get("type") == "redirect_to_url":
        url = (action.get("redirect_to_url") or {}).get("url")
    error = obj.get("last_payment_error") or {}
    return Intent(
        id=obj["id"],
        status=status,
        amount_minor=int(obj.get("amount") or 0),
        currency=str(obj.get("currency") or "").upper(),
        amount_received_minor=int(received),
        capture_method=obj.get("capture_method") or "automatic",
        client_secret=obj.get("client_secret"),
        next_action_url=url,
        failure_message=error.get("message") if status == "requires_payment_method" else None,
        metadata=dict(obj.get("metadata") or {}),
    )


def verify_webhook(payload: bytes, signature_header: str | None, secret: str | None,
                   tolerance_s: int = DEFAULT_TOLERANCE_S) -> dict:
    """Stripe's webhook signature check on the raw body, without a gateway (no HTTP client needed):
    the webhook route can call this with the endpoint secret alone. Returns the event as a dict."""
    if not secret:
        raise InvalidSignature("No webhook secret is configured; webhooks are refused.")
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance_s)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(str(exc.user_message or exc).split(";")[0]) from None
    try:
        event = json.loads(payload)
    except ValueError:
        raise InvalidSignature("The webhook body is not JSON.") from None
    if not isinstance(event, dict) or "id" not in event or "type" not in event:
        raise InvalidSignature("The webhook body is not a Stripe event.")
    return event


# (operation, outcome, seconds): outcome is the intent's status, "ok", or the error code
Recorder = Callable[[str, str, float], None]


def ray_payment_metrics() -> Recorder:
    """A Recorder exporting `surge_payment_calls_total{operation,outcome}` and
    `surge_payment_call_duration_seconds{operation}` through Ray (for the actor that owns the gateway)."""
    from ray.util import metrics

    calls = metrics.Counter("surge_payment_calls", "Payment provider calls by operation and outcome.",
                            tag_keys=("operation", "outcome"))
    latency = metrics.Histogram("surge_payment_call_duration_seconds", "Payment provider call latency in seconds.",
                                boundaries=[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                                tag_keys=("operation",))

    def record(operation: str, outcome: str, seconds: float) -> None:
        calls.inc(tags={"operation": operation, "outcome": outcome})
        latency.observe(seconds, tags={"operation": operation})
    return record


def _observed(operation: str):
    """Time a gateway call and report its outcome to the gateway's Recorder, if it has one."""
    def wrap(fn):
        @functools.wraps(fn)
        async def inner(self: "PaymentGateway", *args, **kwargs):
            started, outcome = time.perf_counter(), "error"
            try:
                result = await fn(self, *args, **kwargs)
                outcome = result.status if isinstance(result, Intent) else "ok"
                return result
            except SurgeError as exc:
                outcome = exc.code.value
                raise
            finally:
                if self._record is not None:
                    self._record(operation, outcome, time.perf_counter() - started)
        return inner
    return wrap


class PaymentGateway:
    """One Stripe account (or localstripe). Create one per process; `aclose()` when done.
    `record` (e.g. `ray_payment_metrics()`) receives every call's operation, outcome and duration."""

    def __init__(self, api_key: str, api_base: str | None = None, webhook_secret: str | None = None, *,
                 timeout_s: float = 10.0, max_network_retries: int = 2,
                 webhook_tolerance_s: int = DEFAULT_TOLERANCE_S, record: Recorder | None = None):
        self._record = record
        self.api_key = api_key
        self.api_base = api_base.rstrip("/") if api_base else None
        self.webhook_secret = webhook_secret
        self.webhook_tolerance_s = webhook_tolerance_s
        self._http = stripe.HTTPXClient(timeout=timeout_s)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self.api_base} if self.api_base else None,
            http_client=self._http,
            # the SDK retries connection errors and 409/5xx answers that Stripe marks retryable,
            # with the same idempotency key
            max_network_retries=max_network_retries,
        )

    @property
    def card_fields_allowed(self) -> bool:
        """Whether raw test card fields may be collected: only against the local test server."""
        return self.api_base is not None and not is_live_key(self.api_key)

    async def aclose(self) -> None:
        await self._http.close_async()

    # --- intents ------------------------------------------------------------------------------
    @_observed("create_intent")
    async def create_intent(self, *, amount_minor: int, currency: str, idempotency_key: str, metadata: dict,
                            payment_method: str | None = None, capture_method: str = "automatic",
                            confirm: bool = True) -> Intent:
        """Create (and by default confirm) a PaymentIntent with its payment method set at creation.

        Returns the Intent in whatever state the provider left it: succeeded, requires_capture,
        requires_action (3-D Secure), or requires_payment_method with failure_message (declined)."""
        if amount_minor <= 0 or not isinstance(amount_minor, int):
            raise ValueError("amount_minor must be a positive int")
        if capture_method not in ("automatic", "manual"):
            raise ValueError("capture_method must be automatic or manual")
        params: dict[str, Any] = {
            "amount": amount_minor,
            "currency": currency.lower(),
            "capture_method": capture_method,
            "metadata": {str(k): str(v) for k, v in metadata.items()},
            "payment_method_types": ["card"],
        }
        if payment_method is not None:
            params["payment_method"] = payment_method
        if confirm:
            if payment_method is None:
                raise ValueError("confirm=True needs a payment_method")
            params["confirm"] = True
        try:
            pi = await self._client.v1.payment_intents.create_async(params, {"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            return await self._declined(exc, None)
        except stripe.StripeError as exc:
            raise self._translate(exc, "create a payment") from exc
        return intent_from(pi.to_dict())

    @_observed("retrieve_intent")
    async def retrieve_intent(self, intent_id: str) -> Intent:
        try:
            pi = await self._client.v1.payment_intents.retrieve_async(intent_id)
        except stripe.StripeError as exc:
            raise self._translate(exc, "read the payment") from exc
        return intent_from(pi.to_dict())

    @_observed("confirm_intent")
    async def confirm_intent(self, intent_id: str, idempotency_key: str) -> Intent:
        try:
            pi = await self._client.v1.payment_intents.confirm_async(intent_id, None, {"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            return await self._declined(exc, intent_id)
        except stripe.StripeError as exc:
            raise self._translate(exc, "confirm the payment") from exc
        return intent_from(pi.to_dict())

    @_observed("capture_intent")
    async def capture_intent(self, intent_id: str, amount_minor: int | None, idempotency_key: str) -> Intent:
        """Capture an intent in requires_capture; amount_minor None captures all of it."""
        params = {"amount_to_capture": amount_minor} if amount_minor is not None else None
        try:
            pi = await self._client.v1.payment_intents.capture_async(intent_id, params, {"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise self._translate(exc, "capture the payment") from exc
        return intent_from(pi.to_dict())

    @_observed("cancel_intent")
    async def cancel_intent(self, intent_id: str, idempotency_key: str) -> Intent:
        try:
            pi = await self._client.v1.payment_intents.cancel_async(intent_id, None, {"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise self._translate(exc, "cancel the payment") from exc
        return intent_from(pi.to_dict())

    @_observed("refund")
    async def refund(self, payment_intent_id: str, amount_minor: int, idempotency_key: str) -> tuple[str, str]:
        """Refund part or all of a captured intent → (refund id, status). The caller caps the amount
        at what was captured less what was refunded: localstripe does not."""
        if amount_minor <= 0 or not isinstance(amount_minor, int):
            raise ValueError("amount_minor must be a positive int")
        try:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": payment_intent_id, "amount": amount_minor}, {"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise self._translate(exc, "refund the payment") from exc
        return refund.id, refund.status

    # --- webhooks -----------------------------------------------------------------------------
    def verify_webhook(self, payload: bytes, signature_header: str | None) -> dict:
        """The verified event as a dict; InvalidSignature if the signature, its age or the body is wrong."""
        return verify_webhook(payload, signature_header, self.webhook_secret, self.webhook_tolerance_s)

    # --- test mode ----------------------------------------------------------------------------
    async def create_test_payment_method(self, number: str, exp_month: int, exp_year: int, cvc: str) -> str:
        """A card PaymentMethod from raw fields → its id (pm_…). Test server only (see contract)."""
        if not self.card_fields_allowed:
            raise CardDataNotAllowed()
        try:
            pm = await self._client.v1.payment_methods.create_async({
                "type": "card",
                "card": {"number": number, "exp_month": int(exp_month), "exp_year": int(exp_year), "cvc": cvc},
            })
        except stripe.StripeError as exc:
            raise self._translate(exc, "register the card") from exc
        return pm.id

    @_observed("complete_test_authentication")
    async def complete_test_authentication(self, intent_id: str, client_secret: str, success: bool = True) -> Intent:
        """Pass (or fail) the 3-D Secure challenge of an intent in requires_action, as localstripe's
        Stripe.js shim does. Test server only: real Stripe runs the challenge in the shopper's browser."""
        if not self.card_fields_allowed:
            raise CardDataNotAllowed("3-D Secure can be completed by the server only against the local test server.")
        try:
            resp = await self._client.raw_request_async(
                "post", f"/v1/payment_intents/{intent_id}/_authenticate",
                client_secret=client_secret, success="true" if success else "false")
        except stripe.StripeError as exc:
            raise self._translate(exc, "complete 3-D Secure") from exc
        if resp.code == 402:  # authenticated, then declined when charged (e.g. 4000 0082 6000 3178)
            intent = await self.retrieve_intent(intent_id)
            return intent
        if resp.code >= 400:
            raise PaymentRefused(f"3-D Secure completion refused ({resp.code}).", intent_id=intent_id)
        return intent_from(json.loads(resp.body))

    # --- errors -------------------------------------------------------------------------------
    async def _declined(self, exc: stripe.CardError, intent_id: str | None) -> Intent:
        """A charge-time decline → the declined Intent (the intent exists at the provider)."""
        body = (exc.json_body or {}).get("error") or {}
        message = body.get("message") or exc.user_message or "Your card was declined."
        pi = body.get("payment_intent")
        if isinstance(pi, dict) and pi.get("id"):  # real Stripe puts the intent in the error
            intent = intent_from(pi)
        else:
            if intent_id is None and body.get("charge"):  # localstripe names only the charge
                try:
                    charge = await self._client.v1.charges.retrieve_async(body["charge"])
                    intent_id = charge.to_dict().get("payment_intent")
                except stripe.StripeError as lookup:
                    raise self._translate(lookup, "read the declined payment") from lookup
            if intent_id is None:
                raise PaymentRefused(message, decline_code=body.get("decline_code") or body.get("code"))
            intent = await self.retrieve_intent(intent_id)
        if intent.failure_message is None:
            intent = Intent(**{**intent.__dict__, "failure_message": message})
        log.info("payment declined", extra={"intent_id": intent.id, "code": body.get("decline_code") or body.get("code")})
        return intent

    @staticmethod
    def _translate(exc: stripe.StripeError, doing: str) -> Exception:
        if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)):
            log.warning("payment provider unavailable", extra={"error": repr(exc)})
            return Unavailable(f"The payment provider could not be reached to {doing}; retry shortly.")
        if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
            log.error("payment provider refused Surge's credentials", extra={"error": repr(exc)})
            return Unavailable(f"The payment provider refused Surge's credentials; cannot {doing}.")
        if isinstance(exc, stripe.CardError):
            return PaymentRefused(exc.user_message or "The card was declined.")
        status = getattr(exc, "http_status", None)
        if status is not None and status >= 500:
            return Unavailable(f"The payment provider failed to {doing}; retry shortly.")
        message = exc.user_message or str(exc) or f"The payment provider refused to {doing}."
        if status == 404:
            return NotFound(message)
        return PaymentRefused(message)
