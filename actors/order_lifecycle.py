"""What happens to an order after checkout: fulfilment with capture, shipping, delivery, returns,
refunds and cancellation. A part of `OrderPipeline` (a mixin: it uses the pipeline's pool, gateway,
inventory client, per-cart locks and row readers), kept apart so each file is about one thing.

Every transition is one transaction (order row guarded by the status it expects, history, outbox);
money moves through the provider with an idempotency key per refund; restocks happen after the
transition that allows them committed, so a retried command cannot restock twice.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from actors.domain import events as ev
from actors.domain.errors import InvalidTransition, RefundExceedsCapture, ValidationFailed
from actors.domain.order import CUSTOMER_CANCELLABLE, OrderStatus, check_return_window, check_transition
from storage import order_store
from storage.outbox import OutboxRow

log = logging.getLogger("surge.orders")

S = OrderStatus
PAID_LIKE = ("succeeded", "requires_capture")


def outbox_rows(*events: ev.DomainEvent) -> list[OutboxRow]:
    return [OutboxRow(uuid.uuid4(), e.topic, e.key, ev.event_type(e), ev.event_payload(e), e.occurred_at) for e in events]


def order_event(cls, row, status: str | None = None, **extra) -> ev.DomainEvent:
    return cls(row["number"], row["customer_id"], row["email"], status or row["status"], row["total_minor"],
               row["currency"].strip(), time.time(), **extra)


class OrderLifecycle:
    async def cancel(self, number: str, actor: str, reason: str = "cancelled", customer: bool = False) -> dict[str, Any]:
        row = await self._row(number)
        async with self._lock(row["cart_id"]):
            row = await self._row(number)
            if customer and row["status"] not in CUSTOMER_CANCELLABLE:
                raise InvalidTransition("This order can no longer be cancelled; request a return instead.")
            check_transition(row["status"], S.CANCELLED)
            if row["status"] == S.PENDING_PAYMENT:
                if row["payment_intent_id"]:
                    intent = await self.gateway.retrieve_intent(row["payment_intent_id"])
                    if intent.status in PAID_LIKE:
                        row = await self._paid(row, intent, None, "")  # it was paid after all: cancel it as paid below
                    elif intent.status not in ("canceled",):
                        await self.gateway.cancel_intent(intent.id, idempotency_key=f"cancel-{intent.id}")
                if row["status"] == S.PENDING_PAYMENT:
                    return await self._view(await self._cancel_pending(row, reason, actor, release=row["reservation_ids"],
                                                                       payment_status="canceled"))
            # paid, not yet fulfilled: money back in full, units back on the shelf
            new = await self._transition(row, [S.PAID], S.CANCELLED, reason, actor, ev.OrderCancelled, {"reason": reason},
                                         cancelled_at="now")
            await self._money_back(new, new["captured_minor"] - new["refunded_minor"], f"cancel-{number}")
            await self._restock(new, await self._lines(new), f"cancelled {number}")
            return await self._view(await self._row(number))

    async def fulfil(self, number: str, actor: str) -> dict[str, Any]:
        row = await self._row(number)
        async with self._lock(row["cart_id"]):
            row = await self._row(number)
            check_transition(row["status"], S.FULFILLING)
            extra: dict[str, Any] = {}
            if row["payment_status"] == "requires_capture":  # authorised at checkout, captured when we ship
                intent = await self.gateway.capture_intent(row["payment_intent_id"], row["total_minor"],
                                                           idempotency_key=f"capture-{number}")
                extra = {"captured_minor": intent.amount_received_minor, "payment_status": intent.status}
            return await self._view(await self._transition(row, [S.PAID], S.FULFILLING, "fulfilment started", actor,
                                                           ev.OrderFulfilling, {}, **extra))

    async def ship(self, number: str, actor: str, carrier: str, tracking_number: str) -> dict[str, Any]:
        row = await self._row(number)
        async with self._lock(row["cart_id"]):
            row = await self._row(number)
            check_transition(row["status"], S.SHIPPED)
            return await self._view(await self._transition(
                row, [S.FULFILLING], S.SHIPPED, f"shipped with {carrier} {tracking_number}", actor, ev.OrderShipped,
                {"carrier": carrier, "tracking_number": tracking_number}, carrier=carrier, tracking_number=tracking_number,
                shipped_at="now"))

    async def deliver(self, number: str, actor: str) -> dict[str, Any]:
        row = await self._row(number)
        async with self._lock(row["cart_id"]):
            row = await self._row(number)
            check_transition(row["status"], S.DELIVERED)
            return await self._view(await self._transition(row, [S.SHIPPED], S.DELIVERED, "delivered", actor,
                                                           ev.OrderDelivered, {}, delivered_at="now"))

    async def request_return(self, number: str, actor: str, reason: str, lines: list[dict[str, Any]] | None) -> dict[str, Any]:
        row = await self._row(number)
        async with self._lock(row["cart_id"]):
            row = await self._row(number)
            check_transition(row["status"], S.RETURN_REQUESTED)
            check_return_window(row["delivered_at"], time.time())
            ordered = {l["sku"]: l for l in await self._lines(row)}
            chosen = lines or [{"sku": s, "quantity": l["quantity"]} for s, l in ordered.items()]
            for l in chosen:
                if l["sku"] not in ordered or not 0 < l["quantity"] <= ordered[l["sku"]]["quantity"]:
                    raise ValidationFailed("A returned line must be part of the order, up to its quantity.", sku=l["sku"])
            async with self.pool.acquire() as conn, conn.transaction():
                await order_store.create_return(conn, row["id"], reason, chosen)
                new = await order_store.transition(conn, row["id"], [S.DELIVERED], S.RETURN_REQUESTED, note=reason, actor=actor,
                                                   outbox=outbox_rows(order_event(ev.ReturnRequested, row, S.RETURN_REQUESTED, reason=reason)))
            return await self._view(new)

    async def approve_return(self, number: str, actor: str) -> dict[str, Any]:
        return await self._return_step(number, actor, "requested", "approved", S.RETURN_APPROVED, ev.ReturnApproved)

    async def receive_return(self, number: str, actor: str) -> dict[str, Any]:
        """The parcel is back: restock what was returned (once: the status change happens first)."""
        return await self._return_step(number, actor, "approved", "received", S.RETURN_RECEIVED, ev.ReturnReceived, restock=True)

    async def _return_step(self, number, actor, from_r, to_r, to_status, event_cls, restock: bool = False):
        row = await self._row(number)
        async with self._lock(row["cart_id"]):
            row = await self._row(number)
            check_transition(row["status"], to_status)
            async with self.pool.acquire() as conn, conn.transaction():
                ret = await order_store.open_return(conn, row["id"])
                if ret is None or not await order_store.set_return_status(conn, ret["id"], from_r, to_r):
                    raise InvalidTransition("No return in the expected state.")
                new = await order_store.transition(conn, row["id"], [row["status"]], to_status, note=f"return {to_r}",
                                                   actor=actor, outbox=outbox_rows(order_event(event_cls, row, to_status)))
            if restock:
                await self._restock(new, ret["lines"], f"return of {number}")
            return await self._view(new)

    async def refund(self, number: str, actor: str, amount_minor: int | None, key: str) -> dict[str, Any]:
        """Refund through the provider, capped at what was captured and not yet refunded. Without an
        amount: the open return's lines (when received), else everything left."""
        row = await self._row(number)
        async with self._lock(row["cart_id"]):
            row = await self._row(number)
            if row["status"] not in (S.PAID, S.FULFILLING, S.SHIPPED, S.DELIVERED, S.RETURN_RECEIVED):
                raise InvalidTransition(f"An order that is {row['status']} cannot be refunded.")
            left = row["captured_minor"] - row["refunded_minor"]
            if amount_minor is None:
                amount_minor = left
                if row["status"] == S.RETURN_RECEIVED:
                    async with self.pool.acquire() as conn:
                        ret = await order_store.open_return(conn, row["id"])
                    prices = {l["sku"]: l["unit_price_minor"] for l in await self._lines(row)}
                    amount_minor = min(left, sum(prices[l["sku"]] * l["quantity"] for l in ret["lines"]))
            if amount_minor <= 0 or amount_minor > left:
                raise RefundExceedsCapture(f"At most {left} can be refunded.", refundable_minor=left)
            await self._money_back(row, amount_minor, key)
            row = await self._row(number)
            full = row["refunded_minor"] >= row["captured_minor"]
            if full or row["status"] == S.RETURN_RECEIVED:
                async with self.pool.acquire() as conn, conn.transaction():
                    if row["status"] == S.RETURN_RECEIVED:
                        ret = await order_store.open_return(conn, row["id"])
                        await order_store.set_return_status(conn, ret["id"], "received", "refunded", amount_minor)
                    row = await order_store.transition(
                        conn, row["id"], [row["status"]], S.REFUNDED, note=f"refunded {amount_minor}", actor=actor,
                        outbox=outbox_rows(order_event(ev.OrderRefunded, row, S.REFUNDED, refunded_minor=row["refunded_minor"])))
            return await self._view(row)

    async def _money_back(self, row, amount_minor: int, key: str) -> None:
        if amount_minor <= 0:
            return
        if row["payment_status"] == "requires_capture":  # never captured: void the authorisation
            await self.gateway.cancel_intent(row["payment_intent_id"], idempotency_key=f"void-{key}")
            return
        async with self.pool.acquire() as conn, conn.transaction():
            refund = await order_store.add_refund(conn, row["id"], key, amount_minor)
        if refund is None:
            raise RefundExceedsCapture()
        if refund["stripe_refund_id"] is None:
            refund_id, status = await self.gateway.refund(row["payment_intent_id"], refund["amount_minor"], idempotency_key=key)
            async with self.pool.acquire() as conn:
                await order_store.finish_refund(conn, refund["id"], refund_id, status)

    async def _restock(self, row, lines, reason: str) -> None:
        for l in lines:
            try:
                await self.inventory.adjust(l["sku"], int(l["quantity"]), reason)
            except Exception as exc:  # the order's state is right; the shelf count needs a hand
                log.error("restock failed; adjust by hand", extra={"order": row["number"], "sku": l["sku"], "error": repr(exc)})

    async def _cancel_pending(self, row, reason: str, actor: str, *, release: list[str], payment_status: str,
                              failure: bool = False, event_id: str | None = None, event_type: str = ""):
        """The one way an unpaid order is given up (declined, window closed, cancelled): release the
        given holds, then in one transaction the Stripe event (if any), the transition with its events,
        and the coupon use back. Returns the row as it is now."""
        for rid in release:
            await self.inventory.release(rid)
        events = [order_event(ev.OrderCancelled, row, S.CANCELLED, reason=reason)]
        if failure:
            events.insert(0, order_event(ev.OrderPaymentFailed, row, S.CANCELLED, reason=reason))
        async with self.pool.acquire() as conn, conn.transaction():
            if event_id is not None and not await order_store.record_stripe_event(conn, event_id, event_type,
                                                                                 row["payment_intent_id"]):
                return await order_store.get(conn, row["number"])
            new = await order_store.transition(conn, row["id"], [S.PENDING_PAYMENT], S.CANCELLED, note=reason, actor=actor,
                                               outbox=outbox_rows(*events), cancelled_at="now", payment_status=payment_status,
                                               **({"failure_message": reason} if failure else {}))
            if new is None:
                return await order_store.get(conn, row["number"])
            await order_store.release_coupon(conn, row["id"])
        return new

    async def _transition(self, row, from_statuses, to_status, note, actor, event_cls, event_fields, **fields):
        async with self.pool.acquire() as conn, conn.transaction():
            new = await order_store.transition(conn, row["id"], list(from_statuses), to_status, note=note, actor=actor,
                                               outbox=outbox_rows(order_event(event_cls, row, to_status, **event_fields)), **fields)
        if new is None:
            raise InvalidTransition(f"The order changed meanwhile (now {row['status']}).")
        return new


def order_view(row, lines: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[str, Any]:
    def ts(v):
        return float(v) if v is not None else None

    return {
        "number": row["number"], "status": row["status"], "email": row["email"], "customer_id": row["customer_id"],
        "currency": row["currency"].strip(), "subtotal_minor": row["subtotal_minor"], "discount_minor": row["discount_minor"],
        "shipping_minor": row["shipping_minor"], "total_minor": row["total_minor"], "coupon_code": row["coupon_code"],
        "shipping_method": row["shipping_method"], "shipping_address": row["shipping_address"],
        "payment_status": row["payment_status"], "failure_message": row["failure_message"],
        "captured_minor": row["captured_minor"], "refunded_minor": row["refunded_minor"],
        "carrier": row["carrier"], "tracking_number": row["tracking_number"],
        "created_at": ts(row["created_at"]), "paid_at": ts(row["paid_at"]), "shipped_at": ts(row["shipped_at"]),
        "delivered_at": ts(row["delivered_at"]), "cancelled_at": ts(row["cancelled_at"]),
        "expires_at": ts(row["expires_at"]),
        "lines": [{k: l[k] for k in ("sku", "name", "quantity", "unit_price_minor", "line_total_minor")} for l in lines],
        "history": [{"status": h["status"], "note": h["note"], "at": float(h["at"])} for h in history],
    }
