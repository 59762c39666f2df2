"""A Stripe-compatible stub for tests, for what localstripe cannot do.

Why it exists: localstripe (the local Stripe that `surge up` and the test stack run) **ignores
`Idempotency-Key`** (the same create twice makes two PaymentIntents) and **sends each webhook once,
never retrying**. Real Stripe does both: a repeated request with the same key returns the first
answer (and a key reused with other parameters is refused), and an undelivered webhook is re-sent
for days, possibly after newer events, possibly twice. Surge's behaviour under those (one intent per
order key, one effect per event id, any order) can only be proven against a server that does them.
This stub answers the endpoints `actors.payments.PaymentGateway` uses, the way Stripe does, and
lets a test re-send (or withhold) any webhook.

Scope: PaymentMethods (card), PaymentIntents (create with confirm, retrieve, confirm, capture,
cancel), refunds (capped at what was captured, as Stripe does), and signed webhooks
(`payment_intent.succeeded`, `payment_intent.payment_failed`, `payment_intent.requires_action`,
`payment_intent.canceled`, `charge.refunded`). Cards: 4000 0000 0000 0341 and 0002 are declined
when charged (402 with the intent in the error body, like Stripe), 4000 0025 0000 3155 asks for
3-D Secure (`complete_authentication`), anything else succeeds. `outage = True` answers 503.

Runs on loopback on a free port in a daemon thread: `with StripeStub() as stub: stub.url`.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import httpx

DECLINED = {"4000000000000341", "4000000000000002"}
NEEDS_3DS = {"4000002500003155", "4000002760003184"}


def _unflatten(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's form encoding (`metadata[k]=v`, `payment_method_types[0]=card`) → nested dicts/lists."""
    out: dict = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(node):
        if isinstance(node, dict):
            if node and all(k.isdigit() for k in node):
                return [lists(node[k]) for k in sorted(node, key=int)]
            return {k: lists(v) for k, v in node.items()}
        return node
    return lists(out)


class _Error(Exception):
    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body


class StripeStub:
    def __init__(self, webhook_url: str | None = None, webhook_secret: str | None = None):
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret or "whsec_stub_" + secrets.token_hex(8)
        self.outage = False
        self.send_webhooks = True  # False: record events without delivering them (deliver later, in any order)
        self.lock = threading.RLock()
        self.intents: dict[str, dict] = {}
        self.methods: dict[str, str] = {}  # pm id → card number
        self.refunds: dict[str, dict] = {}
        self.events: dict[str, dict] = {}  # event id → event, in creation order
        self.deliveries: list[tuple[str, int]] = []  # (event id, HTTP status or 0 on a connection error)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, idempotency key)
        self._idem: dict[str, tuple[str, dict, int, dict]] = {}  # key → (method path, params, status, body)
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="stripe-stub", daemon=True)

    def __enter__(self) -> "StripeStub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- test controls -------------------------------------------------------------------------
    def created_intents(self) -> int:
        return sum(1 for m, p, _ in self.requests if m == "POST" and p == "/v1/payment_intents")

    def events_for(self, intent_id: str, type_: str | None = None) -> list[dict]:
        with self.lock:
            return [e for e in self.events.values()
                    if e["data"]["object"].get("id") == intent_id or e["data"]["object"].get("payment_intent") == intent_id
                    if type_ is None or e["type"] == type_]

    def deliver(self, event_id: str, times: int = 1) -> list[int]:
        """(Re-)send an event, as Stripe's retries do; returns the receiver's statuses."""
        return [self._post_event(self.events[event_id]) for _ in range(times)]

    def sign(self, body: bytes, timestamp: int | None = None) -> str:
        t = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(self.webhook_secret.encode(), b"%d.%s" % (t, body), hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    # --- webhooks ------------------------------------------------------------------------------
    def _event(self, type_: str, obj: dict) -> dict:
        event = {"id": f"evt_stub{next(self._ids)}", "object": "event", "type": type_, "created": int(time.time()),
                 "api_version": "2025-01-01", "livemode": False, "data": {"object": json.loads(json.dumps(obj))}}
        self.events[event["id"]] = event
        if self.send_webhooks and self.webhook_url:
            threading.Thread(target=self._post_event, args=(event,), daemon=True).start()
        return event

    def _post_event(self, event: dict) -> int:
        body = json.dumps(event, indent=2).encode()
        try:
            r = httpx.post(self.webhook_url, content=body, timeout=10,
                           headers={"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": self.sign(body)})
            status = r.status_code
        except httpx.HTTPError:
            status = 0
        with self.lock:
            self.deliveries.append((event["id"], status))
        return status

    # --- the API -------------------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_stub{next(self._ids):06d}{secrets.token_hex(4)}"

    def _charge(self, pi: dict) -> None:
        number = self.methods.get(pi["payment_method"], "")
        if number in NEEDS_3DS and not pi.get("_authenticated"):
            pi["status"] = "requires_action"
            pi["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
            self._event("payment_intent.requires_action", self._public(pi))
            return
        pi["next_action"] = None
        if number in DECLINED:
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                                        "message": "Your card was declined."}
            self._event("payment_intent.payment_failed", self._public(pi))
            raise _Error(402, {"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                                         "message": "Your card was declined.", "payment_intent": self._public(pi)}})
        pi["last_payment_error"] = None
        if pi["capture_method"] == "manual":
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
        else:
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]
            self._event("payment_intent.succeeded", self._public(pi))

    @staticmethod
    def _public(pi: dict) -> dict:
        return {k: v for k, v in pi.items() if not k.startswith("_")}

    def _intent(self, intent_id: str) -> dict:
        pi = self.intents.get(intent_id)
        if pi is None:
            raise _Error(404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                         "message": f"No such payment_intent: '{intent_id}'"}})
        return pi

    def _dispatch(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v1/payment_methods":
            pm = self._new_id("pm")
            self.methods[pm] = params["card"]["number"]
            return 200, {"id": pm, "object": "payment_method", "type": "card",
                         "card": {"last4": params["card"]["number"][-4:]}}
        if method == "POST" and path == "/v1/payment_intents":
            pi_id = self._new_id("pi")
            pi = {"id": pi_id, "object": "payment_intent", "amount": int(params["amount"]),
                  "currency": params["currency"], "capture_method": params.get("capture_method", "automatic"),
                  "payment_method": params.get("payment_method"), "metadata": params.get("metadata", {}),
                  "client_secret": f"{pi_id}_secret_{secrets.token_hex(8)}", "amount_received": 0,
                  "amount_capturable": 0, "next_action": None, "last_payment_error": None, "_refunded": 0,
                  "status": "requires_confirmation" if params.get("payment_method") else "requires_payment_method"}
            self.intents[pi_id] = pi
            if params.get("confirm") == "true":
                self._charge(pi)
            return 200, self._public(pi)
        if len(parts) >= 3 and parts[:2] == ["v1", "payment_intents"]:
            pi = self._intent(parts[2])
            action = parts[3] if len(parts) > 3 else None
            if method == "GET" and action is None:
                return 200, self._public(pi)
            if action == "confirm":
                if pi["status"] not in ("requires_confirmation", "requires_payment_method"):
                    raise _Error(400, {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                                                 "message": f"This PaymentIntent's status is {pi['status']}."}})
                self._charge(pi)
                return 200, self._public(pi)
            if action == "capture":
                if pi["status"] != "requires_capture":
                    raise _Error(400, {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                                                 "message": "This PaymentIntent could not be captured."}})
                amount = int(params.get("amount_to_capture", pi["amount"]))
                pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
                self._event("payment_intent.succeeded", self._public(pi))
                return 200, self._public(pi)
            if action == "cancel":
                if pi["status"] in ("succeeded", "canceled"):
                    raise _Error(400, {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                                                 "message": f"This PaymentIntent's status is {pi['status']}."}})
                pi.update(status="canceled", next_action=None)
                self._event("payment_intent.canceled", self._public(pi))
                return 200, self._public(pi)
        if method == "POST" and path == "/v1/refunds":
            pi = self._intent(params["payment_intent"])
            amount = int(params.get("amount", pi["amount_received"] - pi["_refunded"]))
            if pi["status"] != "succeeded" or amount > pi["amount_received"] - pi["_refunded"]:
                raise _Error(400, {"error": {"type": "invalid_request_error", "code": "charge_already_refunded"
                                             if pi["_refunded"] else "amount_too_large",
                                             "message": f"Refund amount ({amount}) is greater than unrefunded amount."}})
            pi["_refunded"] += amount
            refund = {"id": self._new_id("re"), "object": "refund", "amount": amount, "currency": pi["currency"],
                      "payment_intent": pi["id"], "status": "succeeded"}
            self.refunds[refund["id"]] = refund
            self._event("charge.refunded", {"id": "ch_" + pi["id"][3:], "object": "charge", "payment_intent": pi["id"],
                                            "amount": pi["amount_received"], "amount_refunded": pi["_refunded"],
                                            "currency": pi["currency"], "status": "succeeded"})
            return 200, refund
        raise _Error(404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method}: {path})"}})

    def complete_authentication(self, intent_id: str, success: bool = True) -> dict:
        """The shopper passes (or fails) 3-D Secure."""
        with self.lock:
            pi = self._intent(intent_id)
            if success:
                pi["_authenticated"] = True
                try:
                    self._charge(pi)
                except _Error:
                    pass
            else:
                pi.update(status="requires_payment_method", next_action=None, last_payment_error={
                    "code": "payment_intent_authentication_failure",
                    "message": "The provided PaymentMethod has failed authentication."})
                self._event("payment_intent.payment_failed", self._public(pi))
            return self._public(pi)

    def handle(self, method: str, path: str, params: dict, key: str | None) -> tuple[int, dict]:
        with self.lock:
            self.requests.append((method, path, key))
            if self.outage:
                return 503, {"error": {"type": "api_error", "message": "The stub is having an outage."}}
            if key is not None and method == "POST":
                seen = self._idem.get(key)
                if seen is not None:
                    where, first_params, status, body = seen
                    if where != f"{method} {path}" or first_params != params:
                        return 400, {"error": {"type": "idempotency_error", "message":
                                               "Keys for idempotent requests can only be used with the same parameters "
                                               "they were first used with."}}
                    return status, body  # Stripe replays the first answer, errors included
            try:
                status, body = self._dispatch(method, path, params)
            except _Error as exc:
                status, body = exc.status, exc.body
            if key is not None and method == "POST" and status < 500:
                self._idem[key] = (f"{method} {path}", params, status, body)
            return status, body

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, method: str) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                params = _unflatten(parse_qsl(raw or split.query, keep_blank_values=True))
                if not (self.headers.get("Authorization") or "").startswith("Bearer sk_"):
                    status, body = 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
                else:
                    status, body = stub.handle(method, split.path, params, self.headers.get("Idempotency-Key"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_stub")
                if status == 503:
                    self.send_header("Stripe-Should-Retry", "false")  # keep tests of an outage short
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

        return Handler
