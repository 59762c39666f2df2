"""Live analytics, pure: how committed events fold into counters per time bucket.

The Analytics actor reads events from the streams and hands the ones it has not seen before (by
event id) to `fold`; what `fold` returns is added to the rollup tables in one transaction with the
event ids, so a redelivered event is never counted twice. Everything here is plain data: no I/O.

Buckets are UTC, in epoch seconds, at three grains: minute (the live dashboard), hour and day
(history). Money stays in integer minor units, per currency (`revenue_minor:USD`).

The funnel: product views (counted outside the event stream, `product_views`) → add to cart
(`add_to_cart`: a cart change that raised its units) → checkout (`orders_placed`) → paid
(`orders_paid`).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GRAINS = {"minute": 60, "hour": 3600, "day": 86_400}
# The event types that count for something. The rest (every reservation's StockReserved,
# StockLevelChanged, …: most of a flash sale's events) are acknowledged without touching the database.
COUNTED_TYPES = frozenset({"OrderPlaced", "OrderPaid", "OrderPaymentFailed", "OrderCancelled", "OrderRefunded",
                           "CartChanged", "LowStock", "SoldOut", "BackInStock"})
ACTIVE_WINDOW_S = 300.0  # a shopper whose cart changed this recently is "active"


def bucket(at: float, grain: str) -> int:
    size = GRAINS[grain]
    return int(at // size) * size


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event_id: str
    type: str
    payload: dict[str, Any]
    at: float  # when it committed (epoch s)


def customer_key(payload: dict[str, Any]) -> str:
    """Who bought: a registered customer by id, a guest by e-mail."""
    return payload["customer_id"] or "guest:" + payload["email"].strip().lower()


@dataclass
class Rollup:
    counts: Counter = field(default_factory=Counter)  # (grain, bucket, metric) -> delta
    products: dict[tuple[str, int, str], list] = field(default_factory=dict)  # -> [units, revenue, currency]
    paid: list[tuple[str, str | None, str, int, str, float]] = field(default_factory=list)  # key, id, email, total, cur, at
    alerts: list[tuple[str, str, str, int, float]] = field(default_factory=list)  # event id, sku, kind, available, at
    carts_touched: dict[str, float] = field(default_factory=dict)  # cart id -> last change
    cart_units: dict[str, int] = field(default_factory=dict)  # cart id -> units after these events

    def add(self, at: float, metric: str, value: int = 1) -> None:
        if value:
            for grain in GRAINS:
                self.counts[(grain, bucket(at, grain), metric)] += value

    def add_product(self, at: float, sku: str, units: int, revenue: int, currency: str) -> None:
        for grain in GRAINS:
            row = self.products.setdefault((grain, bucket(at, grain), sku), [0, 0, currency])
            row[0] += units
            row[1] += revenue


def fold(events: list[StreamEvent], cart_units: Mapping[str, int]) -> Rollup:
    """The increments of these (new) events. `cart_units` is the caller's memory of each cart's
    units, which tells an add from a removal (the caller merges `Rollup.cart_units` into it once the
    increments committed); a cart first seen mid-life (after a restart) counts only its later adds."""
    r = Rollup()
    for e in events:
        p, at = e.payload, e.at
        if e.type == "OrderPlaced":
            r.add(at, "orders_placed")
        elif e.type == "OrderPaid":
            r.add(at, "orders_paid")
            r.add(at, f"revenue_minor:{p['currency']}", int(p["total_minor"]))
            units = 0
            for sku, quantity, unit_price in p.get("lines") or []:
                units += int(quantity)
                r.add_product(at, sku, int(quantity), int(quantity) * int(unit_price), p["currency"])
            r.add(at, "units_sold", units)
            r.paid.append((customer_key(p), p["customer_id"], p["email"], int(p["total_minor"]), p["currency"], at))
        elif e.type == "OrderPaymentFailed":
            r.add(at, "payment_failures")
        elif e.type == "OrderCancelled":
            r.add(at, "orders_cancelled")
        elif e.type == "OrderRefunded":
            r.add(at, f"refunded_minor:{p['currency']}", int(p.get("refunded_minor") or 0))
        elif e.type == "CartChanged":
            units = sum(int(q) for _, q in p.get("lines") or [])
            before = r.cart_units.get(p["cart_id"], cart_units.get(p["cart_id"]))
            if before is None:
                before = 0 if int(p.get("version", 0)) <= 1 else units
            if units > before:
                r.add(at, "add_to_cart")
            r.cart_units[p["cart_id"]] = units
            r.carts_touched[p["cart_id"]] = at
        elif e.type in ("LowStock", "SoldOut", "BackInStock"):
            if e.type != "BackInStock":
                r.add(at, "low_stock" if e.type == "LowStock" else "sold_out")
            r.alerts.append((e.event_id, p["sku"], e.type, int(p.get("available", 0)), at))
    return r


def customer_split(paid: list[tuple[str, str | None, str, int, str, float]], prior_orders: dict[str, int]) -> Counter:
    """New vs returning, per paid order: an order is a new customer's when that customer had no paid
    order before it (`prior_orders`: their paid orders before this batch). Returns count increments."""
    seen = dict(prior_orders)
    out: Counter = Counter()
    for key, _id, _email, _total, _cur, at in sorted(paid, key=lambda x: x[5]):
        metric = "orders_returning_customer" if seen.get(key, 0) > 0 else "orders_new_customer"
        seen[key] = seen.get(key, 0) + 1
        for grain in GRAINS:
            out[(grain, bucket(at, grain), metric)] += 1
    return out


def customer_totals(paid) -> dict[str, dict[str, Any]]:
    """Per customer in a batch: orders, spent, first and last order time (for the customers table)."""
    out: dict[str, dict[str, Any]] = {}
    for key, cid, email, total, currency, at in paid:
        c = out.setdefault(key, {"customer_id": cid, "email": email, "orders": 0, "spent": 0, "currency": currency,
                                 "first": at, "last": at})
        c["orders"] += 1
        c["spent"] += total
        c["first"], c["last"] = min(c["first"], at), max(c["last"], at)
    return out


def active_shoppers(last_change: dict[str, float], now: float, window_s: float = ACTIVE_WINDOW_S) -> int:
    return sum(1 for at in last_change.values() if now - at <= window_s)


def average_order_value(revenue: dict[str, int], orders: int) -> dict[str, int]:
    """Per currency, in minor units, rounded down (orders in mixed currencies share the count)."""
    return {cur: amount // orders for cur, amount in revenue.items()} if orders else {}


def totals(counts: dict[str, int]) -> dict[str, Any]:
    """The dashboard's figures from summed counters of one period (metric -> value)."""
    revenue = {m.split(":", 1)[1]: v for m, v in counts.items() if m.startswith("revenue_minor:")}
    refunded = {m.split(":", 1)[1]: v for m, v in counts.items() if m.startswith("refunded_minor:")}
    paid = counts.get("orders_paid", 0)
    new, returning = counts.get("orders_new_customer", 0), counts.get("orders_returning_customer", 0)
    return {
        "orders_placed": counts.get("orders_placed", 0), "orders_paid": paid, "revenue_minor": revenue,
        "refunded_minor": refunded, "units_sold": counts.get("units_sold", 0),
        "average_order_value_minor": average_order_value(revenue, paid),
        "payment_failures": counts.get("payment_failures", 0), "orders_cancelled": counts.get("orders_cancelled", 0),
        "low_stock_alerts": counts.get("low_stock", 0), "sold_out_alerts": counts.get("sold_out", 0),
        "funnel": {"product_views": counts.get("product_views", 0), "add_to_cart": counts.get("add_to_cart", 0),
                   "checkout": counts.get("orders_placed", 0), "paid": paid},
        "customers": {"orders_from_new": new, "orders_from_returning": returning},
    }
