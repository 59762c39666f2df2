"""OrderPipeline: the Ray actor that owns the orders of the carts hashing to it, and runs checkout
as a saga: price → reserve → create the order → PaymentIntent (the order's own idempotency key)
→ confirm → on success commit the stock and mark paid; on failure, cancellation or timeout release
and cancel.

Every step is idempotent, so a resubmit (same cart, same Idempotency-Key) or a restart resumes the
saga where it stopped instead of starting another: the reservation id is derived from the key, the
order row is unique per (cart, key), the PaymentIntent id is stored before it is confirmed, and a
Stripe event id is recorded in the transaction that applies it. Commands for one cart run under
its lock, so twenty concurrent submits make one order. A reconciler re-fetches PaymentIntents left
pending (localstripe sends each webhook once, and webhooks get lost) and cancels orders whose
payment window closed, so no order stays pending with stock held.

Orders are written through (one transaction per transition) rather than group-committed: they
are not the hot path, and each transition is followed by a payment-provider call anyway.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from typing import Any

from actors.directory import ActorDirectory, OwnerConfig
from actors.domain import events as ev
from actors.domain.errors import (CartEmpty, CouponInvalid, ErrorCode, IdempotencyConflict, NotFound, SurgeError,
                                  ValidationFailed, error_for)
from actors.domain.order import OrderStatus
from actors.domain.pricing import Coupon, PricedLine, ShippingMethod, quote
from actors.inventory_client import InventoryClient
from actors.keyed_locks import KeyedLocks
from actors.order_lifecycle import PAID_LIKE, OrderLifecycle, order_event, order_view, outbox_rows
from actors.payments import Intent, PaymentGateway, ray_payment_metrics
from actors.process import configure_owner_process
from actors.routing import shard_for
from storage import order_store
from storage.catalog_prices import sku_info
from storage.outbox import OutboxRow
from storage.pool import create_pool

log = logging.getLogger("surge.orders")

S = OrderStatus
FAILED = ("requires_payment_method", "canceled")


def request_fingerprint(cmd: dict[str, Any]) -> str:
    """What a checkout asked for, apart from the payment method (a resubmit may carry a fresh one)."""
    asked = {k: cmd.get(k) for k in ("email", "customer_id", "shipping_address", "shipping_method", "capture_method")}
    return hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()


def reservation_id_for(cart_id: str, key: str) -> str:
    return "ord:" + hashlib.sha256(f"{cart_id}\x00{key}".encode()).hexdigest()[:32]


class OrderPipeline(OrderLifecycle):
    """Owns orders whose cart hashes to it: `shard_for(cart_id, count) == index`."""

    async def __init__(self, config: OwnerConfig, index: int, count: int):
        configure_owner_process(config, f"order-{index}")
        self.index, self.count, self.config = index, count, config
        self.settings = config.settings
        self.pool = await create_pool(config.database_url, min_size=1, max_size=6)
        self.directory = ActorDirectory(config)
        # a saga retrying after a crash needs the shard's exact idempotent answer: no sold-out memory
        self.inventory = InventoryClient(self.directory, soldout_ttl_s=0)
        self.gateway = PaymentGateway(config.stripe_api_key or "sk_test_surge_local", api_base=config.stripe_api_base,
                                      record=ray_payment_metrics())
        self._locks = KeyedLocks()
        self.reconciled = 0
        self._action: dict[str, dict[str, Any]] = {}  # what the shopper must do next (3-D Secure), per pending order
        self._reconciler = asyncio.create_task(self._reconcile_loop())

    def _lock(self, cart_id: str):
        """Serialises the commands of one cart; see `KeyedLocks`."""
        return self._locks.hold(cart_id)

    # --- checkout ----------------------------------------------------------------------------
    async def submit(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """cmd: cart_id, idempotency_key, customer_id, email, shipping_address, shipping_method,
        payment_method (a provider payment-method id), capture_method."""
        cart_id, key = cmd["cart_id"], cmd["idempotency_key"]
        async with self._lock(cart_id):
            async with self.pool.acquire() as conn:
                row = await order_store.find_by_key(conn, cart_id, key)
            if row is None:
                row = await self._place(cmd)
            elif row["customer_id"] != cmd.get("customer_id"):
                raise NotFound("Order not found.")
            elif row["request_fingerprint"] != request_fingerprint(cmd):
                raise IdempotencyConflict(order=row["number"])
            if row["status"] == S.PENDING_PAYMENT:
                row = await self._pay(row, cmd.get("payment_method"))
            return await self._view(row)

    async def _place(self, cmd: dict[str, Any]):
        cart_id = cmd["cart_id"]
        cart = await self.directory.call_key("cart", cart_id, "get", cart_id)
        if cart is None or not cart["lines"]:
            raise CartEmpty()
        if cart["customer_id"] is not None and cart["customer_id"] != cmd.get("customer_id"):
            raise NotFound("Cart not found.")
        now = time.time()
        infos = await sku_info(self.pool, [l["sku"] for l in cart["lines"]])
        gone = [l["sku"] for l in cart["lines"] if l["sku"] not in infos or not infos[l["sku"]].active]
        if gone:
            raise ValidationFailed("Some items are no longer sold; remove them to check out.", skus=gone)
        currency = {infos[l["sku"]].currency for l in cart["lines"]}
        if len(currency) != 1:
            raise ValidationFailed("All items of an order must be priced in one currency.")
        priced = [PricedLine(l["sku"], infos[l["sku"]].product_id, infos[l["sku"]].name, l["quantity"],
                             infos[l["sku"]].price_minor) for l in cart["lines"]]
        customer_key = cmd.get("customer_id") or cmd["email"].lower()
        coupon, used = None, 0
        code = cart.get("coupon_code")
        async with self.pool.acquire() as conn:
            if code:
                c = await order_store.coupon(conn, code)
                coupon = _coupon(c) if c else None
                used = await order_store.coupon_uses_by(conn, code, customer_key)
        q = quote(priced, currency.pop(), coupon=coupon, coupon_code=code, now=now, used_by_customer=used,
                  shipping_method=ShippingMethod(cmd["shipping_method"]), strict_coupon=True)

        # reserve: lines held by the cart (flash sale) are adopted; the rest is held under the order's id
        holds = {l["sku"]: l["holds"] for l in cart["lines"] if l.get("holds")}
        own = [(l["sku"], l["quantity"]) for l in cart["lines"] if l["sku"] not in holds]
        rid = reservation_id_for(cart_id, cmd["idempotency_key"])
        expires_at = now + self.settings.checkout_ttl_s
        if own:
            outcome = await self.inventory.reserve(rid, f"order:{cart_id}", own, self.settings.checkout_ttl_s,
                                                   customer_id=cmd.get("customer_id"))
            if not outcome.held:
                sku = next((s for s, _ in own if outcome.available.get(s, 1) == 0), None)
                raise error_for(outcome.code or "out_of_stock", outcome.detail, sku=sku, available=outcome.available)
            expires_at = min(expires_at, outcome.expires_at or expires_at)
        adopted = [h for line_holds in holds.values() for h in line_holds]
        for h in adopted:
            expires_at = min(expires_at, h["expires_at"])
        reservation_ids = ([rid] if own else []) + [h["reservation_id"] for h in adopted]
        lines = [{"sku": l.sku, "product_id": l.product_id, "name": l.name, "quantity": l.quantity,
                  "unit_price_minor": l.unit_price_minor} for l in q.lines]
        order = {"cart_id": cart_id, "idempotency_key": cmd["idempotency_key"], "customer_id": cmd.get("customer_id"),
                 "email": cmd["email"], "currency": q.currency, "subtotal_minor": q.subtotal_minor,
                 "discount_minor": q.discount_minor, "shipping_minor": q.shipping_minor, "total_minor": q.total_minor,
                 "coupon_code": code if q.discount_minor else None, "shipping_method": q.shipping_method.value,
                 "shipping_address": cmd["shipping_address"], "reservation_ids": reservation_ids,
                 "capture_method": cmd.get("capture_method") or "automatic", "expires_at": expires_at,
                 "request_fingerprint": request_fingerprint(cmd)}
        placed = ev.OrderPlaced("", cmd.get("customer_id"), cmd["email"], S.PENDING_PAYMENT.value, q.total_minor,
                                q.currency, now, tuple((l.sku, l.quantity, l.unit_price_minor) for l in q.lines))
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await order_store.create(conn, order, lines, [OutboxRow(o.event_id, o.topic, "", o.type, o.payload,
                                                                               o.occurred_at) for o in outbox_rows(placed)],
                                               customer_key)
                if row is None:
                    raise CouponInvalid("Invalid coupon: this code has been used up.", coupon=code)
        except BaseException:
            if own:
                await self.inventory.release(rid)
            raise
        log.info("order placed", extra={"order": row["number"], "total_minor": row["total_minor"]})
        return row

    async def _pay(self, row, payment_method: str | None):
        intent: Intent | None = None
        try:
            if row["payment_intent_id"] is None:
                if payment_method is None:
                    return row  # nothing to charge with yet; the shopper pays by submitting again
                intent = await self.gateway.create_intent(
                    amount_minor=row["total_minor"], currency=row["currency"].strip().lower(),
                    idempotency_key=row["payment_key"], metadata={"order_number": row["number"], "cart_id": row["cart_id"]},
                    payment_method=payment_method, capture_method=row["capture_method"], confirm=False)
                async with self.pool.acquire() as conn:
                    await order_store.set_intent(conn, row["id"], intent.id, intent.status)
                intent = await self.gateway.confirm_intent(intent.id, idempotency_key=row["payment_key"] + ":confirm")
            else:
                intent = await self.gateway.retrieve_intent(row["payment_intent_id"])
                if intent.status == "requires_confirmation":  # created, then a crash before the confirm
                    intent = await self.gateway.confirm_intent(intent.id, idempotency_key=row["payment_key"] + ":confirm")
        except SurgeError as exc:
            if exc.code.value != "payment_declined":
                raise
            # a decline at charge time: the order is cancelled, the cart (and its holds) kept
            return await self._fail(row, exc.detail, None)
        return await self._apply(row, intent, None)

    # --- payment outcomes ----------------------------------------------------------------------
    async def _apply(self, row, intent: Intent, event_id: str | None, event_type: str = ""):
        """Bring the order in line with its PaymentIntent (from the confirm call, a webhook or the
        reconciler; in any order, any number of times)."""
        if intent.status in PAID_LIKE:
            return await self._paid(row, intent, event_id, event_type)
        if intent.status in FAILED:
            if intent.status == "canceled" or intent.failure_message:
                return await self._fail(row, intent.failure_message or "The payment was cancelled.", event_id, event_type)
        async with self.pool.acquire() as conn, conn.transaction():
            if event_id is not None and not await order_store.record_stripe_event(conn, event_id, event_type, intent.id):
                return row
            await order_store.set_payment_status(conn, row["id"], intent.status)
            fresh = await order_store.get(conn, row["number"])
        if intent.needs_action:
            self._action[row["number"]] = {"type": "authenticate", "payment_intent_id": intent.id,
                                           "client_secret": intent.client_secret, "url": intent.next_action_url}
        return fresh

    async def _paid(self, row, intent: Intent, event_id: str | None, event_type: str):
        if row["status"] != S.PENDING_PAYMENT:
            if row["status"] == S.CANCELLED and intent.status == "succeeded":
                # money arrived after the order was given up: give it back
                await self._refund_intent(row, intent, "payment arrived after the order was cancelled")
            async with self.pool.acquire() as conn:
                if event_id is not None:
                    await order_store.record_stripe_event(conn, event_id, event_type, intent.id)
            return row
        if intent.amount_minor != row["total_minor"] or intent.currency.lower() != row["currency"].strip().lower():
            log.error("payment does not match the order", extra={"order": row["number"], "intent": intent.id,
                                                                  "amount": intent.amount_minor, "currency": intent.currency})
            async with self.pool.acquire() as conn:
                await order_store.set_payment_status(conn, row["id"], "amount_mismatch",
                                                     "The payment does not match the order total.")
                return await order_store.get(conn, row["number"])
        lines = await self._lines(row)
        skus = [l["sku"] for l in lines]
        committed: list[str] = []
        for rid in row["reservation_ids"]:
            result = await self.inventory.commit(rid, skus)
            if not result["ok"] and result["code"] == ErrorCode.RESERVATION_NOT_FOUND.value:
                # committed before (this saga stopped before marking the order paid), and its owner no
                # longer remembers that sale: a restarted owner loads none without a customer, a running
                # one forgets them after `settled_reservations_keep_s`. The database remembers.
                async with self.pool.acquire() as conn:
                    if await order_store.reservation_committed(conn, rid):
                        result = {"ok": True, "code": None, "state": "committed"}
            if not result["ok"]:
                # a hold ran out before the money came: refund, put back what the holds committed before
                # this one already sold, and release whatever is still held
                await self._refund_intent(row, intent, "stock hold expired before payment")
                if committed:
                    async with self.pool.acquire() as conn:
                        sold = await order_store.committed_lines(conn, committed)
                    await self._restock(row, sold, f"hold expired before payment of {row['number']}")
                return await self._fail(row, "Your items were no longer held when the payment arrived; "
                                             "the payment was refunded.", event_id, event_type)
            committed.append(rid)
        captured = intent.amount_received_minor if intent.status == "succeeded" else 0
        async with self.pool.acquire() as conn, conn.transaction():
            if event_id is not None and not await order_store.record_stripe_event(conn, event_id, event_type, intent.id):
                return await order_store.get(conn, row["number"])
            new = await order_store.transition(
                conn, row["id"], [S.PENDING_PAYMENT], S.PAID, note=f"payment {intent.status}", actor="payments",
                outbox=outbox_rows(order_event(ev.OrderPaid, row, S.PAID, lines=tuple((l["sku"], l["quantity"], l["unit_price_minor"])
                                                                          for l in lines))),
                paid_at="now", payment_status=intent.status, captured_minor=captured, payment_intent_id=intent.id)
        if new is None:
            return row
        self._action.pop(row["number"], None)
        try:
            await self.directory.call_key("cart", row["cart_id"], "checked_out", row["cart_id"],
                                          [(l["sku"], l["quantity"]) for l in lines])
        except Exception as exc:  # the order is paid; a cart that still shows the lines is a nuisance, not a loss
            log.warning("clearing the cart failed", extra={"order": row["number"], "error": repr(exc)})
        log.info("order paid", extra={"order": row["number"]})
        return new

    async def _fail(self, row, reason: str, event_id: str | None, event_type: str = ""):
        if row["status"] != S.PENDING_PAYMENT:
            return row
        own = reservation_id_for(row["cart_id"], row["idempotency_key"])
        # adopted cart holds stay with the cart (policy: a declined payment keeps the cart)
        new = await self._cancel_pending(row, reason, "payments", release=[own] if own in row["reservation_ids"] else [],
                                         payment_status="failed", failure=True, event_id=event_id, event_type=event_type)
        log.info("order payment failed", extra={"order": row["number"], "reason": reason})
        return new

    async def _refund_intent(self, row, intent: Intent, why: str) -> None:
        try:
            if intent.status == "succeeded":
                await self.gateway.refund(intent.id, intent.amount_received_minor, idempotency_key=f"auto-refund-{intent.id}")
            else:
                await self.gateway.cancel_intent(intent.id, idempotency_key=f"cancel-{intent.id}")
            log.warning("payment returned", extra={"order": row["number"], "reason": why})
        except Exception as exc:
            log.error("returning a payment failed; needs attention", extra={"order": row["number"], "error": repr(exc)})

    async def payment_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A verified webhook (`actors.domain.payment_events.PaymentEvent` as a dict)."""
        number = (event.get("metadata") or {}).get("order_number")
        async with self.pool.acquire() as conn:
            row = await order_store.get(conn, number) if number else await order_store.get_by_intent(conn, event["intent_id"])
        if row is None:
            return {"applied": False, "reason": "unknown order"}
        async with self._lock(row["cart_id"]):
            async with self.pool.acquire() as conn:
                if await conn.fetchval("select true from stripe_events where event_id = $1", event["event_id"]):
                    return {"applied": False, "reason": "duplicate", "order": row["number"]}
                row = await order_store.get(conn, row["number"])
                if row["status"] not in (S.PENDING_PAYMENT, S.CANCELLED) and row["payment_intent_id"] == event["intent_id"]:
                    # Already paid through this very intent (usually in the submit's own answer): no
                    # state of the intent can change the order any more, so record the event without
                    # asking the provider again (that fetch was one of the three provider calls per order).
                    await order_store.record_stripe_event(conn, event["event_id"], event["type"], event["intent_id"])
                    return {"applied": True, "order": row["number"], "status": row["status"]}
            # the event is a hint; the PaymentIntent as Stripe holds it now is the truth (events come in any order)
            intent = await self.gateway.retrieve_intent(event["intent_id"])
            new = await self._apply(row, intent, event["event_id"], event["type"])
            return {"applied": True, "order": row["number"], "status": new["status"]}

    async def refresh_payment(self, number: str) -> dict[str, Any]:
        """Re-fetch the order's PaymentIntent and apply it (after 3-D Secure, or from the reconciler)."""
        row = await self._row(number)
        async with self._lock(row["cart_id"]):
            row = await self._row(number)
            if row["status"] == S.PENDING_PAYMENT and row["payment_intent_id"]:
                row = await self._apply(row, await self.gateway.retrieve_intent(row["payment_intent_id"]), None)
            return await self._view(row)

    # --- reads and the reconciler ------------------------------------------------------------------
    async def _row(self, number: str):
        async with self.pool.acquire() as conn:
            row = await order_store.get(conn, number)
        if row is None:
            raise NotFound("Order not found.")
        return row

    async def _lines(self, row) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            return [dict(r) for r in await order_store.lines(conn, row["id"])]

    async def _view(self, row) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            lines = [dict(r) for r in await order_store.lines(conn, row["id"])]
            history = [dict(r) for r in await order_store.history(conn, row["id"])]
        view = order_view(row, lines, history)
        view["next_action"] = self._action.get(row["number"]) if row["status"] == S.PENDING_PAYMENT else None
        return view

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_interval_s)
            try:
                await self.reconcile_once()
            except Exception as exc:  # the next round tries again
                log.warning("reconciling failed", extra={"error": repr(exc)})

    async def reconcile_once(self) -> int:
        """Pending orders of this pipeline: re-fetch their PaymentIntent; past the payment window,
        cancel and release."""
        async with self.pool.acquire() as conn:
            due = await order_store.pending_due(conn, self.settings.reconcile_after_s)
        n = 0
        for row in due:
            if shard_for(row["cart_id"], self.count) != self.index:
                continue
            async with self._lock(row["cart_id"]):
                row = await self._row(row["number"])
                if row["status"] != S.PENDING_PAYMENT:
                    continue
                if row["payment_intent_id"]:
                    row = await self._apply(row, await self.gateway.retrieve_intent(row["payment_intent_id"]), None)
                if row["status"] == S.PENDING_PAYMENT and row["expires_at"] <= time.time():
                    if row["payment_intent_id"]:
                        try:
                            await self.gateway.cancel_intent(row["payment_intent_id"], idempotency_key=f"cancel-{row['payment_intent_id']}")
                        except SurgeError as exc:
                            log.warning("cancelling an expired intent failed", extra={"order": row["number"], "error": repr(exc)})
                    await self._cancel_pending(row, "payment window closed", "reconciler", release=row["reservation_ids"],
                                               payment_status="expired")
                n += 1
        self.reconciled += n
        return n

    async def ping(self) -> dict:
        return {"ready": True, "shard": self.index, "pid": os.getpid(), "reconciled": self.reconciled}


def _coupon(r) -> Coupon:
    return Coupon(r["code"], r["kind"], r["value"], r["currency"].strip(), r["min_subtotal_minor"],
                  float(r["starts_at"]) if r["starts_at"] is not None else None,
                  float(r["ends_at"]) if r["ends_at"] is not None else None,
                  r["usage_limit"], r["per_customer_limit"], r["times_used"], r["active"])
