"""Pricing: what a cart costs, computed on the server from catalog prices. Pure, integers only.

Money is an `int` of minor units with an ISO currency; nothing here sees a float. Percent
discounts round half up to the minor unit and never exceed the subtotal; shipping is a flat rate
per method, free above a threshold for standard shipping.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from actors.domain.errors import CouponInvalid, CouponNotApplicable


class ShippingMethod(StrEnum):
    STANDARD = "standard"
    EXPRESS = "express"


@dataclass(frozen=True, slots=True)
class ShippingRate:
    method: ShippingMethod
    label: str
    cost_minor: int
    free_over_minor: int | None = None
    days: str = ""

    def cost_for(self, subtotal_after_discount: int) -> int:
        if self.free_over_minor is not None and subtotal_after_discount >= self.free_over_minor:
            return 0
        return self.cost_minor


SHIPPING_RATES: dict[ShippingMethod, ShippingRate] = {
    ShippingMethod.STANDARD: ShippingRate(ShippingMethod.STANDARD, "Standard (3-5 days)", 599, free_over_minor=5000, days="3-5"),
    ShippingMethod.EXPRESS: ShippingRate(ShippingMethod.EXPRESS, "Express (1-2 days)", 1599, days="1-2"),
}


@dataclass(frozen=True, slots=True)
class Coupon:
    code: str
    kind: str  # "percent" | "fixed"
    value: int  # percent points, or minor units
    currency: str = "USD"
    min_subtotal_minor: int = 0
    starts_at: float | None = None
    ends_at: float | None = None
    usage_limit: int | None = None
    per_customer_limit: int | None = None
    times_used: int = 0
    active: bool = True

    def check(self, subtotal_minor: int, currency: str, now: float, used_by_customer: int = 0) -> None:
        """Raise why this coupon cannot apply now to this subtotal (or return quietly)."""
        if not self.active or (self.starts_at is not None and now < self.starts_at):
            raise CouponInvalid("Invalid coupon: this code is not active.", coupon=self.code)
        if self.ends_at is not None and now >= self.ends_at:
            raise CouponInvalid("Invalid coupon: this code has expired.", coupon=self.code)
        if self.usage_limit is not None and self.times_used >= self.usage_limit:
            raise CouponInvalid("Invalid coupon: this code has been used up.", coupon=self.code)
        if self.per_customer_limit is not None and used_by_customer >= self.per_customer_limit:
            raise CouponInvalid("Invalid coupon: you have already used this code.", coupon=self.code)
        if self.kind == "fixed" and self.currency != currency:
            raise CouponNotApplicable("This coupon does not apply to this currency.", coupon=self.code)
        if subtotal_minor < self.min_subtotal_minor:
            raise CouponNotApplicable("The cart is below this coupon's minimum.", coupon=self.code,
                                      min_subtotal_minor=self.min_subtotal_minor)

    def discount_for(self, subtotal_minor: int) -> int:
        if self.kind == "percent":
            raw = (subtotal_minor * self.value + 50) // 100  # half up, in integers
        else:
            raw = self.value
        return max(0, min(raw, subtotal_minor))


@dataclass(frozen=True, slots=True)
class PricedLine:
    sku: str
    product_id: int
    name: str
    quantity: int
    unit_price_minor: int
    compare_at_minor: int | None = None

    @property
    def total_minor(self) -> int:
        return self.unit_price_minor * self.quantity


@dataclass(frozen=True, slots=True)
class Quote:
    currency: str
    lines: tuple[PricedLine, ...]
    subtotal_minor: int
    discount_minor: int
    shipping_minor: int
    total_minor: int
    coupon_code: str | None = None
    coupon_error: str | None = None  # why a coupon in the cart does not apply (it stays, unapplied)
    shipping_method: ShippingMethod = ShippingMethod.STANDARD
    unavailable: tuple[str, ...] = field(default=())  # SKUs no longer sold (inactive product)


def quote(lines: list[PricedLine], currency: str, *, coupon: Coupon | None = None, coupon_code: str | None = None,
          shipping_method: ShippingMethod = ShippingMethod.STANDARD, now: float = 0.0, used_by_customer: int = 0,
          unavailable: tuple[str, ...] = (), strict_coupon: bool = False) -> Quote:
    """Price lines. A coupon code that does not apply is reported in `coupon_error` (the cart keeps
    showing why), or raised when `strict_coupon` (checkout must not silently drop a discount)."""
    for line in lines:
        if line.unit_price_minor < 0 or line.quantity < 1:
            raise ValueError(f"bad priced line {line}")
    subtotal = sum(line.total_minor for line in lines)
    discount = 0
    error = None
    if coupon_code:
        try:
            if coupon is None:
                raise CouponInvalid("Invalid coupon: unknown code.", coupon=coupon_code)
            coupon.check(subtotal, currency, now, used_by_customer)
            discount = coupon.discount_for(subtotal)
        except (CouponInvalid, CouponNotApplicable) as exc:
            if strict_coupon:
                raise
            error = exc.detail
    shipping = SHIPPING_RATES[ShippingMethod(shipping_method)].cost_for(subtotal - discount) if lines else 0
    return Quote(currency, tuple(lines), subtotal, discount, shipping, subtotal - discount + shipping,
                 coupon_code, error, ShippingMethod(shipping_method), tuple(unavailable))
