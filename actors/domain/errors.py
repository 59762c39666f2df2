"""One error hierarchy for Surge, with a stable code list (Saleor's `error_codes.py` style).

Contract:
- `ErrorCode` values are part of the public API (they appear in problem+json bodies and in
  clients' code): add codes, never rename or reuse one.
- Every code maps to exactly one HTTP status in `STATUS`; the HTTP edge maps a `SurgeError` to a
  response once, from `error.code` and `error.status`, and nothing else catches-and-rethrows.
- Expected refusals (out of stock, cap exceeded) are *results* in the domain; these exceptions are
  for invalid input and programmer errors, and for the edge when it turns a refusal into a
  response (`error_for(code, detail)`).
- Errors cross Ray actor boundaries, so they pickle with their detail and context.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    # generic
    VALIDATION = "validation"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    OVERLOADED = "overloaded"
    # inventory
    OUT_OF_STOCK = "out_of_stock"
    UNKNOWN_SKU = "unknown_sku"
    CAP_EXCEEDED = "cap_exceeded"
    RESERVATION_NOT_FOUND = "reservation_not_found"
    RESERVATION_CONFLICT = "reservation_conflict"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_TRANSITION = "invalid_transition"
    # carts and orders
    COUPON_INVALID = "coupon_invalid"
    COUPON_NOT_APPLICABLE = "coupon_not_applicable"
    CART_EMPTY = "cart_empty"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    REFUND_EXCEEDS_CAPTURE = "refund_exceeds_capture"
    RETURN_WINDOW_CLOSED = "return_window_closed"
    # payments
    PAYMENT_DECLINED = "payment_declined"
    INVALID_CARD = "invalid_card"
    INVALID_SIGNATURE = "invalid_signature"
    PAYMENT_REFUSED = "payment_refused"
    CARD_DATA_NOT_ALLOWED = "card_data_not_allowed"
    # accounts
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_TOKEN = "invalid_token"
    EMAIL_TAKEN = "email_taken"
    ACCOUNT_DEACTIVATED = "account_deactivated"
    RATE_LIMITED = "rate_limited"
    # catalog
    SLUG_TAKEN = "slug_taken"
    SKU_TAKEN = "sku_taken"
    UNKNOWN_CATEGORY = "unknown_category"
    PRODUCT_NOT_FOUND = "product_not_found"
    REVIEW_NOT_FOUND = "review_not_found"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.OVERLOADED: 429,
    ErrorCode.OUT_OF_STOCK: 409,
    ErrorCode.UNKNOWN_SKU: 404,
    ErrorCode.CAP_EXCEEDED: 409,
    ErrorCode.RESERVATION_NOT_FOUND: 404,
    ErrorCode.RESERVATION_CONFLICT: 409,
    ErrorCode.INVALID_QUANTITY: 422,
    ErrorCode.INVALID_TRANSITION: 409,
    ErrorCode.COUPON_INVALID: 422,
    ErrorCode.COUPON_NOT_APPLICABLE: 422,
    ErrorCode.CART_EMPTY: 422,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    ErrorCode.REFUND_EXCEEDS_CAPTURE: 409,
    ErrorCode.RETURN_WINDOW_CLOSED: 409,
    # payments
    ErrorCode.PAYMENT_DECLINED: 402,
    ErrorCode.INVALID_CARD: 422,
    ErrorCode.INVALID_SIGNATURE: 400,
    ErrorCode.PAYMENT_REFUSED: 409,
    ErrorCode.CARD_DATA_NOT_ALLOWED: 403,
    # accounts
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.INVALID_TOKEN: 401,
    ErrorCode.EMAIL_TAKEN: 409,
    ErrorCode.ACCOUNT_DEACTIVATED: 403,
    ErrorCode.RATE_LIMITED: 429,
    # catalog
    ErrorCode.SLUG_TAKEN: 409,
    ErrorCode.SKU_TAKEN: 409,
    ErrorCode.UNKNOWN_CATEGORY: 422,
    ErrorCode.PRODUCT_NOT_FOUND: 404,
    ErrorCode.REVIEW_NOT_FOUND: 404,
}

_BY_CODE: dict[ErrorCode, type[SurgeError]] = {}


class SurgeError(Exception):
    """Base of every Surge error: a stable `code`, the HTTP `status` it maps to, a human `detail`
    and optional machine-readable `context` (e.g. `{"sku": ..., "available": 0}`)."""

    code: ClassVar[ErrorCode] = ErrorCode.VALIDATION
    status: ClassVar[int] = 422
    default_detail: ClassVar[str] = "The request is not valid."

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.status = STATUS[cls.code]
        # the first class declared for a code is the one `error_for` builds
        _BY_CODE.setdefault(cls.code, cls)

    def __init__(self, detail: str | None = None, **context: Any) -> None:
        self.detail = detail or self.default_detail
        self.context = context
        super().__init__(self.detail)

    def __reduce__(self):  # keep detail and context across pickling (Ray actor boundaries)
        return (_rebuild, (type(self), self.detail, self.context))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, detail={self.detail!r}, context={self.context!r})"


def _rebuild(cls: type[SurgeError], detail: str, context: dict[str, Any]) -> SurgeError:
    return cls(detail, **context)


def error_for(code: ErrorCode | str, detail: str | None = None, **context: Any) -> SurgeError:
    """The exception for a code, e.g. to turn a refused domain result into a response."""
    return _BY_CODE[ErrorCode(code)](detail, **context)


# generic


class ValidationFailed(SurgeError):
    code = ErrorCode.VALIDATION
    default_detail = "The request is not valid."


class NotFound(SurgeError):
    code = ErrorCode.NOT_FOUND
    default_detail = "Not found."


class Unavailable(SurgeError):
    code = ErrorCode.UNAVAILABLE
    default_detail = "The service is temporarily unavailable."


class Overloaded(SurgeError):
    code = ErrorCode.OVERLOADED
    default_detail = "Too many requests; retry later."


# inventory


class OutOfStock(SurgeError):
    code = ErrorCode.OUT_OF_STOCK
    default_detail = "Not enough stock."


class UnknownSku(SurgeError):
    code = ErrorCode.UNKNOWN_SKU
    default_detail = "Unknown SKU."


class CapExceeded(SurgeError):
    code = ErrorCode.CAP_EXCEEDED
    default_detail = "The per-customer limit for this item is reached."


class ReservationNotFound(SurgeError):
    code = ErrorCode.RESERVATION_NOT_FOUND
    default_detail = "Reservation not found."


class ReservationConflict(SurgeError):
    code = ErrorCode.RESERVATION_CONFLICT
    default_detail = "This reservation id is already used for different content."


class InvalidQuantity(SurgeError):
    code = ErrorCode.INVALID_QUANTITY
    default_detail = "Quantity must be a positive whole number."


class InvalidTransition(SurgeError):
    code = ErrorCode.INVALID_TRANSITION
    default_detail = "This change is not allowed in the current state."


# carts and orders


class CouponInvalid(SurgeError):
    code = ErrorCode.COUPON_INVALID
    default_detail = "Invalid coupon."


class CouponNotApplicable(SurgeError):
    code = ErrorCode.COUPON_NOT_APPLICABLE
    default_detail = "This coupon does not apply to this cart."


class CartEmpty(SurgeError):
    code = ErrorCode.CART_EMPTY
    default_detail = "The cart is empty."


class IdempotencyConflict(SurgeError):
    code = ErrorCode.IDEMPOTENCY_CONFLICT
    default_detail = "This Idempotency-Key was used for a different request."


class RefundExceedsCapture(SurgeError):
    code = ErrorCode.REFUND_EXCEEDS_CAPTURE
    default_detail = "A refund cannot exceed what was captured and not yet refunded."


class ReturnWindowClosed(SurgeError):
    code = ErrorCode.RETURN_WINDOW_CLOSED
    default_detail = "The return window for this order has closed."
# payments


class PaymentDeclined(SurgeError):
    """The card was declined when charged. The gateway returns a declined Intent (a result); the
    edge raises this (with the provider's message as detail) to answer the shopper."""

    code = ErrorCode.PAYMENT_DECLINED
    default_detail = "Your card was declined."


class InvalidCard(SurgeError):
    """Test-mode card fields refused before any call to the payment provider."""

    code = ErrorCode.INVALID_CARD
    default_detail = "The card details are not valid."


class InvalidSignature(SurgeError):
    """A webhook whose Stripe-Signature does not verify (forged, stale or tampered)."""

    code = ErrorCode.INVALID_SIGNATURE
    default_detail = "The webhook signature is not valid."


class PaymentRefused(SurgeError):
    """The payment provider refused a request for the state the payment is in (capture of an
    uncaptured intent, refund of a failed payment, an idempotency key reused with other parameters)."""

    code = ErrorCode.PAYMENT_REFUSED
    default_detail = "The payment provider refused this request."


class CardDataNotAllowed(SurgeError):
    """Raw card numbers may reach Surge only when the provider is the local test server."""

    code = ErrorCode.CARD_DATA_NOT_ALLOWED
    default_detail = "Card details cannot be sent to the server with live payment keys."


# accounts


class Unauthenticated(SurgeError):
    code = ErrorCode.UNAUTHENTICATED
    default_detail = "Sign in to continue."


class Forbidden(SurgeError):
    code = ErrorCode.FORBIDDEN
    default_detail = "You are not allowed to do this."


class InvalidCredentials(SurgeError):
    code = ErrorCode.INVALID_CREDENTIALS
    default_detail = "Incorrect email or password."


class InvalidToken(SurgeError):
    code = ErrorCode.INVALID_TOKEN
    default_detail = "The token is invalid or expired."


class EmailTaken(SurgeError):
    code = ErrorCode.EMAIL_TAKEN
    default_detail = "An account with this email already exists."


class AccountDeactivated(SurgeError):
    code = ErrorCode.ACCOUNT_DEACTIVATED
    default_detail = "This account is deactivated."


class RateLimited(SurgeError):
    code = ErrorCode.RATE_LIMITED
    default_detail = "Too many attempts; retry later."


# catalog


class SlugTaken(SurgeError):
    code = ErrorCode.SLUG_TAKEN
    default_detail = "This slug is already used."


class SkuTaken(SurgeError):
    code = ErrorCode.SKU_TAKEN
    default_detail = "This SKU belongs to another product."


class UnknownCategory(SurgeError):
    code = ErrorCode.UNKNOWN_CATEGORY
    default_detail = "No such category."


class ProductNotFound(SurgeError):
    code = ErrorCode.PRODUCT_NOT_FOUND
    default_detail = "Product not found."


class ReviewNotFound(SurgeError):
    code = ErrorCode.REVIEW_NOT_FOUND
    default_detail = "Review not found."
