"""Request and response models. Request bodies forbid unknown fields (no smuggled price, owner or role)."""
from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Line(Strict):
    sku: Sku
    quantity: int = Field(ge=1, le=1000)


class ReserveRequest(Strict):
    reservation_id: Id = Field(default_factory=lambda: uuid.uuid4().hex,
                               description="Caller-chosen id; retrying with the same id is safe.")
    owner: Id = Field(description="What holds the stock, e.g. cart:abc or order:ORD-1")
    customer_id: Id | None = None
    lines: list[Line] = Field(min_length=1, max_length=100)
    ttl_s: float = Field(default=600, gt=0, le=86_400)


class Reservation(BaseModel):
    reservation_id: str
    state: str
    expires_at: float | None = None
    available: dict[str, int] = {}


class CommitRequest(Strict):
    skus: list[Sku] = Field(min_length=1, max_length=100)


MAX_UNITS = 1_000_000_000  # per SKU: far beyond any shelf, far inside bigint (sums of them stay exact)


class AdjustRequest(Strict):
    delta: int = Field(ge=-MAX_UNITS, le=MAX_UNITS, description="Units received (> 0) or written off (< 0)")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class StockSettings(Strict):
    on_hand: int = Field(ge=0, le=MAX_UNITS)
    low_stock_threshold: int = Field(default=0, ge=0, le=MAX_UNITS)
    per_customer_cap: int | None = Field(default=None, ge=1, le=MAX_UNITS)


class StockLevel(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int
    sold: int
    received: int
    low_stock_threshold: int
    per_customer_cap: int | None
    version: int


# --- carts --------------------------------------------------------------------------------------


class AddToCart(Strict):
    sku: Sku
    quantity: int = Field(default=1, ge=1, le=99)


class SetQuantity(Strict):
    quantity: int = Field(ge=1, le=99)


class ApplyCoupon(Strict):
    code: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]


class CartHold(BaseModel):
    expires_at: float
    seconds_left: int


class CartLine(BaseModel):
    sku: str
    name: str
    product_slug: str
    quantity: int
    unit_price_minor: int
    compare_at_minor: int | None = None
    line_total_minor: int
    flash_sale: bool = False
    hold: CartHold | None = None


class SavedItem(BaseModel):
    sku: str
    quantity: int
    name: str
    unit_price_minor: int | None = None


class CartView(BaseModel):
    id: str | None
    status: str
    currency: str
    lines: list[CartLine]
    saved: list[SavedItem]
    coupon_code: str | None
    coupon_error: str | None
    units: int
    subtotal_minor: int
    discount_minor: int
    shipping_minor: int
    total_minor: int
    unavailable: list[str] = []


# --- checkout and orders ------------------------------------------------------------------------

US_STATES = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
             "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR").split()
Email = Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")]


class Address(Strict):
    name: Text
    line1: Text
    line2: Annotated[str, StringConstraints(max_length=200)] | None = None
    city: Text
    state: Annotated[str, StringConstraints(pattern="^(" + "|".join(US_STATES) + ")$")]
    zip: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}(-[0-9]{4})?$")]
    country: Annotated[str, StringConstraints(pattern="^US$")] = "US"


class CardFields(Strict):
    """Card fields, accepted only when the payment provider is the local test server."""

    number: Annotated[str, StringConstraints(min_length=12, max_length=23)]
    expiry: Annotated[str, StringConstraints(min_length=4, max_length=7)]
    cvc: Annotated[str, StringConstraints(min_length=0, max_length=4)]


class PaymentInput(Strict):
    payment_method_id: Annotated[str, StringConstraints(min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_]+$")] | None = None
    card: CardFields | None = None


class CheckoutRequest(Strict):
    email: Email | None = Field(default=None, description="Required for guests; defaults to the account's email")
    shipping_address: Address
    shipping_method: Literal["standard", "express"] = "standard"
    payment: PaymentInput
    capture_method: Literal["automatic", "manual"] = "automatic"


class OrderLineView(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    line_total_minor: int


class OrderHistoryEntry(BaseModel):
    status: str
    note: str | None = None
    at: float


class NextAction(BaseModel):
    type: str
    payment_intent_id: str
    client_secret: str | None = None
    url: str | None = None


class OrderView(BaseModel):
    number: str
    status: str
    email: str
    currency: str
    subtotal_minor: int
    discount_minor: int
    shipping_minor: int
    total_minor: int
    coupon_code: str | None = None
    shipping_method: str
    shipping_address: dict
    payment_status: str | None = None
    failure_message: str | None = None
    captured_minor: int
    refunded_minor: int
    carrier: str | None = None
    tracking_number: str | None = None
    created_at: float | None = None
    paid_at: float | None = None
    shipped_at: float | None = None
    delivered_at: float | None = None
    cancelled_at: float | None = None
    expires_at: float | None = None
    lines: list[OrderLineView]
    history: list[OrderHistoryEntry]
    next_action: NextAction | None = None
    order_token: str | None = Field(default=None, description="Guests: send as X-Order-Token to read this order later")


class ReturnRequest(Strict):
    reason: Annotated[str, StringConstraints(min_length=3, max_length=500)]
    lines: list[Line] | None = Field(default=None, max_length=100, description="Default: the whole order")


class ShipRequest(Strict):
    carrier: Annotated[str, StringConstraints(min_length=2, max_length=40)]
    tracking_number: Annotated[str, StringConstraints(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]


class RefundRequest(Strict):
    amount_minor: int | None = Field(default=None, gt=0, le=10**12,
                                     description="Default: what is left to refund (or the return's value)")


MAX_MINOR = 10**12  # ten billion in major units: beyond any one order, well inside bigint
Epoch = Annotated[float, Field(ge=0, le=4_102_444_800, description="Unix seconds (until 2100)")]


class CouponCreate(Strict):
    code: Annotated[str, StringConstraints(min_length=3, max_length=40, pattern=r"^[A-Z0-9_-]+$")]
    kind: Literal["percent", "fixed"]
    value: int = Field(gt=0, le=MAX_MINOR, description="Percent points (at most 100), or minor units")
    currency: Literal["USD"] = "USD"
    min_subtotal_minor: int = Field(default=0, ge=0, le=MAX_MINOR)
    starts_at: Epoch | None = None
    ends_at: Epoch | None = None
    usage_limit: int | None = Field(default=None, gt=0, le=10**9)
    per_customer_limit: int | None = Field(default=None, gt=0, le=10**9)
    active: bool = True
