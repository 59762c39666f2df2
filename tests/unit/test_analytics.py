"""The analytics rollup rules (actors/domain/analytics.py): pure, no servers."""
import uuid

import pytest

from actors.domain.analytics import (GRAINS, StreamEvent, active_shoppers, average_order_value, bucket,
                                     customer_split, customer_totals, fold, totals)

pytestmark = pytest.mark.unit

T = 1_764_000_000.0  # a fixed instant, UTC


def ev(type_: str, at: float = T, **payload) -> StreamEvent:
    return StreamEvent(str(uuid.uuid4()), type_, payload, at)


def paid(number: str, total: int, lines, customer_id=None, email="a@example.com", at: float = T) -> StreamEvent:
    return ev("OrderPaid", at, number=number, customer_id=customer_id, email=email, status="paid", total_minor=total,
              currency="USD", occurred_at=at, lines=lines)


def test_buckets_truncate_to_utc_minute_hour_and_day():
    at = 1_764_003_725.5  # 2025-11-24 17:02:05.5 UTC
    assert bucket(at, "minute") == 1_764_003_720
    assert bucket(at, "hour") == 1_764_003_600
    assert bucket(at, "day") % 86_400 == 0 and 0 <= at - bucket(at, "day") < 86_400


def test_a_paid_order_counts_once_in_every_grain_with_its_revenue_units_and_products():
    r = fold([paid("ORD-1", 4500, [["A", 2, 1500], ["B", 1, 1500]])], {})
    for grain in GRAINS:
        b = bucket(T, grain)
        assert r.counts[(grain, b, "orders_paid")] == 1
        assert r.counts[(grain, b, "revenue_minor:USD")] == 4500
        assert r.counts[(grain, b, "units_sold")] == 3
        assert r.products[(grain, b, "A")][:2] == [2, 3000]
        assert r.products[(grain, b, "B")][:2] == [1, 1500]


def test_the_funnel_counts_adds_checkouts_and_payments_but_not_removals():
    units = {}
    events = [
        ev("CartChanged", cart_id="c1", customer_id=None, version=1, lines=[["A", 1]], holds=[], coupon_code=None),
        ev("CartChanged", cart_id="c1", customer_id=None, version=2, lines=[["A", 2]], holds=[], coupon_code=None),
        ev("CartChanged", cart_id="c1", customer_id=None, version=3, lines=[["A", 1]], holds=[], coupon_code=None),
        ev("OrderPlaced", number="ORD-1", customer_id=None, email="a@x", status="pending_payment", total_minor=1,
           currency="USD", occurred_at=T, lines=[]),
        ev("OrderPaymentFailed", number="ORD-1", customer_id=None, email="a@x", status="cancelled", total_minor=1,
           currency="USD", occurred_at=T, reason="declined"),
    ]
    r = fold(events, units)
    t = totals({m: v for (g, _b, m), v in r.counts.items() if g == "day"})
    assert t["funnel"] == {"product_views": 0, "add_to_cart": 2, "checkout": 1, "paid": 0}
    assert t["payment_failures"] == 1
    assert r.cart_units == {"c1": 1} and units == {}  # the caller merges memory only after its commit


def test_a_cart_first_seen_mid_life_counts_only_later_adds():
    r = fold([ev("CartChanged", cart_id="c9", customer_id=None, version=7, lines=[["A", 5]], holds=[], coupon_code=None)], {})
    assert not any(m == "add_to_cart" for (_g, _b, m) in r.counts)
    r2 = fold([ev("CartChanged", cart_id="c9", customer_id=None, version=8, lines=[["A", 6]], holds=[], coupon_code=None)],
              r.cart_units)
    assert r2.counts[("day", bucket(T, "day"), "add_to_cart")] == 1


def test_stock_alerts_are_kept_and_counted():
    r = fold([ev("LowStock", sku="S", available=2, threshold=5, occurred_at=T), ev("SoldOut", sku="S", occurred_at=T),
              ev("BackInStock", sku="S", available=4, occurred_at=T)], {})
    day = bucket(T, "day")
    assert r.counts[("day", day, "low_stock")] == 1 and r.counts[("day", day, "sold_out")] == 1
    assert [(a[1], a[2], a[3]) for a in r.alerts] == [("S", "LowStock", 2), ("S", "SoldOut", 0), ("S", "BackInStock", 4)]


def test_new_and_returning_customers_follow_each_customers_paid_order_history():
    cid = str(uuid.uuid4())
    batch = [paid("ORD-1", 100, [], customer_id=cid, at=T), paid("ORD-2", 200, [], customer_id=cid, at=T + 1),
             paid("ORD-3", 300, [], email="Guest@Example.com", at=T + 2)]
    r = fold(batch, {})
    per_customer = customer_totals(r.paid)
    assert per_customer[cid]["orders"] == 2 and per_customer[cid]["spent"] == 300
    assert per_customer["guest:guest@example.com"]["orders"] == 1
    split = customer_split(r.paid, prior_orders={cid: 0, "guest:guest@example.com": 3})
    day = bucket(T, "day")
    assert split[("day", day, "orders_new_customer")] == 1  # cid's first order
    assert split[("day", day, "orders_returning_customer")] == 2  # cid's second, the guest's fourth


def test_average_order_value_is_integer_minor_units_per_currency():
    assert average_order_value({"USD": 1000}, 3) == {"USD": 333}
    assert average_order_value({}, 0) == {}


def test_active_shoppers_are_carts_changed_in_the_window():
    assert active_shoppers({"a": T, "b": T - 100, "c": T - 1000}, now=T, window_s=300) == 2
