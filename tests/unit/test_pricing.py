"""Server-side pricing: integers only, coupons' rules, shipping."""
import pytest
from hypothesis import given, strategies as st

from actors.domain.errors import CouponInvalid, CouponNotApplicable
from actors.domain.pricing import Coupon, PricedLine, ShippingMethod, quote

pytestmark = pytest.mark.unit

SAVE10 = Coupon("SAVE10", "percent", 10)


def lines(*prices_qty):
    return [PricedLine(f"S{i}", i, f"P{i}", q, p) for i, (p, q) in enumerate(prices_qty)]


def test_subtotal_discount_shipping_total_in_minor_units():
    q = quote(lines((1999, 2), (501, 1)), "USD", coupon=SAVE10, coupon_code="SAVE10")
    assert q.subtotal_minor == 4499
    assert q.discount_minor == 450  # 449.9 rounds half up
    assert q.shipping_minor == 599  # below the free-shipping threshold after discount
    assert q.total_minor == 4499 - 450 + 599


def test_standard_shipping_is_free_over_the_threshold_express_never():
    assert quote(lines((5000, 1)), "USD").shipping_minor == 0
    assert quote(lines((5000, 1)), "USD", shipping_method=ShippingMethod.EXPRESS).shipping_minor == 1599
    assert quote([], "USD").total_minor == 0


def test_fixed_coupon_never_exceeds_the_subtotal():
    c = Coupon("BIG", "fixed", 10_000)
    q = quote(lines((300, 1)), "USD", coupon=c, coupon_code="BIG")
    assert q.discount_minor == 300 and q.total_minor == 599


@pytest.mark.parametrize("coupon,now,used,error", [
    (Coupon("OLD", "percent", 10, ends_at=100.0), 100.0, 0, CouponInvalid),
    (Coupon("SOON", "percent", 10, starts_at=200.0), 100.0, 0, CouponInvalid),
    (Coupon("OFF", "percent", 10, active=False), 100.0, 0, CouponInvalid),
    (Coupon("GONE", "percent", 10, usage_limit=5, times_used=5), 100.0, 0, CouponInvalid),
    (Coupon("ONCE", "percent", 10, per_customer_limit=1), 100.0, 1, CouponInvalid),
    (Coupon("MIN", "percent", 10, min_subtotal_minor=10_000), 100.0, 0, CouponNotApplicable),
    (Coupon("EUR", "fixed", 100, currency="EUR"), 100.0, 0, CouponNotApplicable),
])
def test_a_coupon_that_does_not_apply_is_explained_or_refused_at_checkout(coupon, now, used, error):
    q = quote(lines((1000, 1)), "USD", coupon=coupon, coupon_code=coupon.code, now=now, used_by_customer=used)
    assert q.discount_minor == 0 and q.coupon_error
    with pytest.raises(error):
        quote(lines((1000, 1)), "USD", coupon=coupon, coupon_code=coupon.code, now=now, used_by_customer=used,
              strict_coupon=True)


def test_unknown_coupon_code_says_invalid_coupon():
    q = quote(lines((1000, 1)), "USD", coupon=None, coupon_code="NOPE")
    assert q.coupon_error.startswith("Invalid coupon")


@given(st.lists(st.tuples(st.integers(0, 10**7), st.integers(1, 99)), min_size=1, max_size=20),
       st.integers(1, 100), st.sampled_from(list(ShippingMethod)))
def test_totals_add_up_and_discount_is_bounded(items, percent, method):
    q = quote(lines(*items), "USD", coupon=Coupon("P", "percent", percent), coupon_code="P", shipping_method=method)
    assert all(isinstance(v, int) for v in (q.subtotal_minor, q.discount_minor, q.shipping_minor, q.total_minor))
    assert 0 <= q.discount_minor <= q.subtotal_minor
    assert q.total_minor == q.subtotal_minor - q.discount_minor + q.shipping_minor
