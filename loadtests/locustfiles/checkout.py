"""Locust scenario: end-to-end checkout through the HTTP API, cart to paid order.

Each task is one shopper with a fresh guest cart: 1-3 distinct lines of 1-2 units (``POST
/cart/items``; the cart travels in the ``X-Cart-Token`` header the first answer hands out, never in
a cookie), ``SAVE10`` applied with probability ``SURGE_BENCH_COUPON_SHARE`` (``POST /cart/coupon``),
then ``POST /checkout`` with a fresh ``Idempotency-Key``, a unique guest email and a test card. There
is no think time inside an order (the latency is the API's, not a shopper's); between orders a user
waits ``SURGE_BENCH_PACE_S`` seconds (0: none).

Cards: 4242 4242 4242 4242, paid in the submit's answer (201). With probability
``SURGE_BENCH_3DS_SHARE`` the 3-D Secure card 4000 0025 0000 3155 instead: the submit answers 202
with ``next_action``, the shopper passes the challenge at localstripe (``POST
{SURGE_BENCH_STRIPE_URL}/v1/payment_intents/<id>/_authenticate``, what localstripe's Stripe.js shim
does in the browser), and then polls ``GET /orders/<number>`` (``X-Order-Token``) every
``POLL_EVERY_S`` until it is paid: nothing but localstripe's ``payment_intent.succeeded`` webhook
marks those orders paid (the shopper never calls ``/payment/refresh``). A poll is bounded by
``WEBHOOK_WAIT_S``.

Environment:
- ``SURGE_BENCH_SKUS``: comma-separated SKUs to buy from. Required.
- ``SURGE_BENCH_OUT``: path of the JSON file written when the test stops (one Locust process only).
- ``SURGE_BENCH_COUPON_SHARE`` (default 0.5), ``SURGE_BENCH_3DS_SHARE`` (default 0),
  ``SURGE_BENCH_PACE_S`` (default 0), ``SURGE_BENCH_STRIPE_URL`` (needed when the 3DS share > 0),
  ``SURGE_BENCH_MAX_ORDERS`` (default 100000: a user stops once this process has started that many).

Request names: ``add item``, ``apply coupon``, ``checkout``, ``3ds challenge``, ``poll order``; an
unexpected answer is a failure whose error names the step and the HTTP status. The out file::

    {"pid", "started_at", "stopped_at",
     "orders": [[number, card ("4242" | "3ds"), cart_started_at, paid_at, submit_answered_at, lines, coupon]],
     "errors": {"<step>: HTTP <status>" | "<step>: <what>": n},
     "stats": {name: {"requests", "failures", "req_per_s", "p50_ms", "p99_ms"}, ..., "Aggregated": {...}}}

Times are ``time.time()`` of this process: ``cart_started_at`` when the first add-to-cart was sent,
``paid_at`` when the answer that showed the order paid arrived (the submit's for 4242, the poll's
for 3-D Secure).
"""
from __future__ import annotations

import json
import os
import random
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser

SKUS = [s for s in os.environ.get("SURGE_BENCH_SKUS", "").split(",") if s]
OUT = os.environ.get("SURGE_BENCH_OUT")
COUPON_SHARE = float(os.environ.get("SURGE_BENCH_COUPON_SHARE", "0.5"))
THREE_DS_SHARE = float(os.environ.get("SURGE_BENCH_3DS_SHARE", "0"))
PACE_S = float(os.environ.get("SURGE_BENCH_PACE_S", "0"))
STRIPE_URL = os.environ.get("SURGE_BENCH_STRIPE_URL", "").rstrip("/")
MAX_ORDERS = int(os.environ.get("SURGE_BENCH_MAX_ORDERS", "100000"))
if not SKUS:
    raise ValueError("SURGE_BENCH_SKUS must name at least one SKU")
if THREE_DS_SHARE > 0 and not STRIPE_URL.startswith("http://127.0.0.1:"):
    raise ValueError("SURGE_BENCH_3DS_SHARE > 0 needs SURGE_BENCH_STRIPE_URL=http://127.0.0.1:<port>")

CARD_4242 = {"number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123"}
CARD_3DS = {"number": "4000 0025 0000 3155", "expiry": "12/34", "cvc": "123"}
ADDRESS = {"name": "Bench Shopper", "line1": "1 Market St", "city": "San Francisco", "state": "CA", "zip": "94105"}
STRIPE_KEY = "sk_test_surge_local"
POLL_EVERY_S = 0.05
WEBHOOK_WAIT_S = 15.0


class _Tally:
    def __init__(self) -> None:
        self.started_at = time.time()
        self.orders: list[list] = []
        self.errors: dict[str, int] = {}
        self.begun = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


TALLY = _Tally()


def _entry_figures(entry: object) -> dict:
    n = entry.num_requests
    return {"requests": n, "failures": entry.num_failures, "req_per_s": round(entry.total_rps, 1),
            "p50_ms": entry.get_response_time_percentile(0.5) if n else None,
            "p99_ms": entry.get_response_time_percentile(0.99) if n else None}


def _write_out(environment: object = None) -> None:
    if not OUT:
        return
    stats = getattr(environment, "stats", None)
    final = None
    if stats is not None:
        final = {e.name: _entry_figures(e) for e in stats.entries.values()}
        final["Aggregated"] = _entry_figures(stats.total)
    doc = {"pid": os.getpid(), "started_at": TALLY.started_at, "stopped_at": time.time(),
           "orders": TALLY.orders, "errors": TALLY.errors, "stats": final}
    path = Path(OUT)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


@events.test_stop.add_listener
def _on_test_stop(environment: object = None, **kwargs: object) -> None:
    _write_out(environment)


@events.quitting.add_listener
def _on_quitting(environment: object = None, **kwargs: object) -> None:
    _write_out(environment)  # again, so answers that arrived during the stop are counted


class _Failed(Exception):
    """One step of an order went wrong; the order is abandoned (already counted)."""


class CheckoutShopper(FastHttpUser):
    wait_time = constant(PACE_S)

    def _call(self, method: str, path: str, step: str, ok: tuple[int, ...], **kwargs):
        with self.client.request(method, path, name=step, catch_response=True, **kwargs) as resp:
            if resp.status_code in ok:
                resp.success()
                return resp
            kind = f"{step}: HTTP {resp.status_code}" if resp.status_code else f"{step}: {type(resp.error).__name__}"
            TALLY.error(kind)
            resp.failure(kind)
        raise _Failed(kind)  # outside the context manager, which would otherwise record it again

    @task
    def buy(self) -> None:
        if TALLY.begun >= MAX_ORDERS:
            raise StopUser()
        TALLY.begun += 1
        # a fresh guest: no cookie from the last order, the cart only in the header
        self.client.cookiejar.clear()
        try:
            self._order()
        except _Failed:
            pass

    def _order(self) -> None:
        lines = random.sample(SKUS, k=random.randint(1, min(3, len(SKUS))))
        coupon = random.random() < COUPON_SHARE
        three_ds = random.random() < THREE_DS_SHARE
        started = time.time()
        headers: dict[str, str] = {}
        for sku in lines:
            resp = self._call("POST", "/cart/items", "add item", (201,), json={"sku": sku, "quantity": random.randint(1, 2)},
                              headers=headers)
            token = resp.headers.get("X-Cart-Token")
            if not token:
                TALLY.error("add item: no X-Cart-Token")
                raise _Failed("no cart token")
            headers = {"X-Cart-Token": token}
        if coupon:
            self._call("POST", "/cart/coupon", "apply coupon", (200,), json={"code": "SAVE10"}, headers=headers)
        body = {"email": f"bench-{uuid.uuid4().hex[:16]}@example.com", "shipping_address": ADDRESS,
                "shipping_method": "standard", "payment": {"card": CARD_3DS if three_ds else CARD_4242}}
        resp = self._call("POST", "/checkout", "checkout", (201, 202),
                          json=body, headers={**headers, "Idempotency-Key": "bench-" + uuid.uuid4().hex})
        answered = time.time()
        order = resp.json()
        if resp.status_code == 201:
            if order.get("status") != "paid":
                TALLY.error(f"checkout: 201 but {order.get('status')}")
                return
            TALLY.orders.append([order["number"], "4242", started, answered, answered, len(lines), coupon])
            return
        action = order.get("next_action") or {}
        if not three_ds or action.get("type") != "authenticate":
            TALLY.error("checkout: unexpected 202")
            return
        self._call("POST", f"{STRIPE_URL}/v1/payment_intents/{action['payment_intent_id']}/_authenticate",
                   "3ds challenge", (200,),
                   data=urlencode({"client_secret": action["client_secret"], "success": "true"}),
                   headers={"Authorization": f"Bearer {STRIPE_KEY}",
                            "Content-Type": "application/x-www-form-urlencoded"})
        order_headers = {"X-Order-Token": order["order_token"]}
        deadline = time.time() + WEBHOOK_WAIT_S
        while time.time() < deadline:
            got = self._call("GET", f"/orders/{order['number']}", "poll order", (200,), headers=order_headers).json()
            if got["status"] == "paid":
                TALLY.orders.append([order["number"], "3ds", started, time.time(), answered, len(lines), coupon])
                return
            if got["status"] != "pending_payment":
                TALLY.error(f"poll order: became {got['status']}")
                return
            time.sleep(POLL_EVERY_S)
        TALLY.error("poll order: not paid within the wait")
