"""Checkout: the priced cart with shipping options, then one submit that places and pays the order.

`POST /checkout` needs an `Idempotency-Key`: the same key for the same cart returns the same order,
also when twenty copies arrive at once (the order pipeline owning the cart serialises them).
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from actors.domain.cards import validate_card
from actors.domain.errors import CardDataNotAllowed, CartEmpty, PaymentDeclined, ValidationFailed
from serve_app import cart_session
from serve_app.deps import Ctx, OptionalUser
from serve_app.errors import surge_problem
from serve_app.schemas import CheckoutRequest, IdempotencyKey, OrderView

router = APIRouter(prefix="/checkout", tags=["checkout"])


@router.get("")
async def start(ctx: Ctx, request: Request, response: Response, user: OptionalUser) -> dict:
    """Checkout start: the cart priced on the server, shipping options with their costs, and how the
    page collects payment (plain card fields only against the local test server)."""
    cart_id = await cart_session.resolve(ctx, request, response, user, create=False)
    cart = await ctx.directory.call_key("cart", cart_id, "get", cart_id) if cart_id else None
    customer = str(user.user_id) if user is not None and user.user_id is not None else None
    view = await cart_session.priced(ctx, cart, customer)
    return {"cart": view, "shipping_options": cart_session.shipping_options(view["subtotal_minor"] - view["discount_minor"]),
            "payment": {"card_fields": ctx.gateway.card_fields_allowed, "provider": "stripe"}}


@router.post("", status_code=201, response_model=OrderView,
             responses={202: {"description": "Payment needs the shopper's action (3-D Secure): see next_action"},
                        402: {"description": "Card declined: the cart and its held stock are kept"},
                        409: {"description": "Out of stock or cap reached"}, 422: {"description": "Invalid input"}})
async def submit(ctx: Ctx, request: Request, response: Response, user: OptionalUser, body: CheckoutRequest,
                 idempotency_key: Annotated[IdempotencyKey, Header()]):
    cart_id = await cart_session.resolve(ctx, request, None, user, create=False)
    if cart_id is None:
        raise CartEmpty()
    customer = str(user.user_id) if user is not None and user.user_id is not None else None
    email = body.email or (user.email if user is not None else None)
    if email is None:
        raise ValidationFailed("An email address is needed to check out as a guest.", field="email")
    payment_method = body.payment.payment_method_id
    if body.payment.card is not None:
        if not ctx.gateway.card_fields_allowed:
            raise CardDataNotAllowed()
        card = validate_card(body.payment.card.number, body.payment.card.expiry, body.payment.card.cvc, dt.date.today())
        payment_method = await ctx.gateway.create_test_payment_method(card.number, card.exp_month, card.exp_year, card.cvc)
    if payment_method is None:
        raise ValidationFailed("A payment method is needed.", field="payment")
    order = await ctx.directory.call_key("order", cart_id, "submit", {
        "cart_id": cart_id, "idempotency_key": idempotency_key, "customer_id": customer, "email": email.lower(),
        "shipping_address": body.shipping_address.model_dump(), "shipping_method": body.shipping_method,
        "payment_method": payment_method, "capture_method": body.capture_method,
    }, retry=True)  # every step of the saga is idempotent for this key
    if customer is None:
        order["order_token"] = ctx.order_tokens.dumps(order["number"])
    if order["status"] == "cancelled" and order["payment_status"] == "failed":
        return surge_problem(PaymentDeclined(order["failure_message"] or "The payment was declined.",
                                             order=order["number"]), str(request.url.path))
    if order["status"] == "pending_payment":
        return JSONResponse(OrderView(**order).model_dump(mode="json"), status_code=202)
    return OrderView(**order)
