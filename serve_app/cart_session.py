"""Which cart a request means, and what it costs.

A signed-in customer's cart is their active cart (one per customer, found in Postgres). A guest's
cart id travels in a signed token: the `surge_cart` cookie (HttpOnly, SameSite=Lax) for pages, or
the `X-Cart-Token` header for API clients; a token that fails its signature is ignored. Prices are
always computed here, on the server, from the catalog: the cart itself stores no prices.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import Request, Response

from actors.domain.pricing import SHIPPING_RATES, Coupon, PricedLine, ShippingMethod, quote
from serve_app.context import AppContext
from serve_app.principal import Principal
from storage import cart_store, order_store
from storage.catalog_prices import SkuInfo, sku_info

COOKIE = "surge_cart"
HEADER = "x-cart-token"
COOKIE_MAX_AGE_S = 30 * 24 * 3600


def new_cart_id() -> str:
    return "c_" + uuid.uuid4().hex


def guest_cart_id(ctx: AppContext, request: Request) -> str | None:
    return ctx.cart_tokens.loads(request.headers.get(HEADER) or request.cookies.get(COOKIE))


async def resolve(ctx: AppContext, request: Request, response: Response | None, user: Principal | None,
                  create: bool) -> str | None:
    """The cart id for this request (creating the cart's id when `create`); sets the guest cookie."""
    if user is not None and user.user_id is not None:
        customer = str(user.user_id)
        cart_id = await cart_store.active_cart_of(ctx.pool, customer)
        if cart_id is None and create:
            cart_id = new_cart_id()
            await ctx.directory.call_key("cart", cart_id, "attach", cart_id, customer)
        return cart_id
    cart_id = guest_cart_id(ctx, request)
    if cart_id is None and create:
        cart_id = new_cart_id()
    if cart_id is not None and response is not None:
        token = ctx.cart_tokens.dumps(cart_id)
        response.headers["X-Cart-Token"] = token
        response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="lax",
                            secure=ctx.config.serve.cookie_secure, path="/")
    return cart_id


def empty_view(cart_id: str | None) -> dict[str, Any]:
    return {"id": cart_id, "status": "active", "currency": "USD", "lines": [], "saved": [], "coupon_code": None,
            "coupon_error": None, "units": 0, "subtotal_minor": 0, "discount_minor": 0, "shipping_minor": 0,
            "total_minor": 0, "unavailable": []}


async def priced(ctx: AppContext, cart: dict[str, Any] | None, customer_key: str | None,
                 shipping_method: ShippingMethod = ShippingMethod.STANDARD,
                 known: dict[str, SkuInfo] | None = None) -> dict[str, Any]:
    """The cart as the shopper sees it: lines with names and prices, hold countdowns, totals.
    `known`: SKU facts the caller already read in this request (not read again)."""
    if cart is None:
        return empty_view(None)
    now = time.time()
    skus = [l["sku"] for l in cart["lines"]] + [s["sku"] for s in cart["saved"]]
    infos = dict(known or {})
    infos.update(await sku_info(ctx.pool, [s for s in skus if s not in infos]))
    sellable = [l for l in cart["lines"] if l["sku"] in infos and infos[l["sku"]].active]
    unavailable = [l["sku"] for l in cart["lines"] if l not in sellable]
    currency = infos[sellable[0]["sku"]].currency if sellable else cart.get("currency", "USD")
    lines = [PricedLine(l["sku"], infos[l["sku"]].product_id, infos[l["sku"]].name, l["quantity"], infos[l["sku"]].price_minor)
             for l in sellable]
    coupon, used = None, 0
    code = cart.get("coupon_code")
    if code:
        async with ctx.pool.acquire() as conn:
            row = await order_store.coupon(conn, code)
            if row is not None:
                coupon = Coupon(row["code"], row["kind"], row["value"], row["currency"].strip(), row["min_subtotal_minor"],
                                row["starts_at"], row["ends_at"], row["usage_limit"], row["per_customer_limit"],
                                row["times_used"], row["active"])
                if customer_key:
                    used = await order_store.coupon_uses_by(conn, code, customer_key)
    q = quote(lines, currency, coupon=coupon, coupon_code=code, now=now, used_by_customer=used,
              shipping_method=shipping_method, unavailable=tuple(unavailable))
    by_sku = {l["sku"]: l for l in cart["lines"]}

    def line_view(pl: PricedLine) -> dict[str, Any]:
        info, holds = infos[pl.sku], by_sku[pl.sku].get("holds") or []
        expires_at = min((h["expires_at"] for h in holds), default=None)
        return {"sku": pl.sku, "name": pl.name, "product_slug": info.product_slug, "quantity": pl.quantity,
                "unit_price_minor": pl.unit_price_minor, "compare_at_minor": info.compare_at_minor,
                "line_total_minor": pl.total_minor, "flash_sale": info.flash_sale,
                "hold": None if expires_at is None else {"expires_at": expires_at,
                                                          "seconds_left": max(0, int(expires_at - now))}}

    return {
        "id": cart["id"], "status": cart["status"], "currency": q.currency,
        "lines": [line_view(pl) for pl in q.lines],
        "saved": [{"sku": s["sku"], "quantity": s["quantity"], "name": infos[s["sku"]].name if s["sku"] in infos else s["sku"],
                   "unit_price_minor": infos[s["sku"]].price_minor if s["sku"] in infos else None} for s in cart["saved"]],
        "coupon_code": code, "coupon_error": q.coupon_error, "units": sum(l.quantity for l in q.lines),
        "subtotal_minor": q.subtotal_minor, "discount_minor": q.discount_minor, "shipping_minor": q.shipping_minor,
        "total_minor": q.total_minor, "unavailable": list(q.unavailable),
    }


def shipping_options(subtotal_after_discount: int) -> list[dict[str, Any]]:
    return [{"method": r.method.value, "label": r.label, "cost_minor": r.cost_for(subtotal_after_discount),
             "days": r.days} for r in SHIPPING_RATES.values()]


async def merge_into_customer(ctx: AppContext, request: Request, user: Principal) -> dict | None:
    """Merge the request's guest cart into the signed-in customer's cart (idempotent: a merged
    guest cart is empty). Called by the merge route and at sign-in."""
    guest_id = guest_cart_id(ctx, request)
    cart_id = await resolve(ctx, request, None, user, create=True)
    if guest_id is None or guest_id == cart_id:
        return await ctx.directory.call_key("cart", cart_id, "get", cart_id)
    guest = await ctx.directory.call_key("cart", guest_id, "take_guest", guest_id, retry=False)
    if guest is None:
        return await ctx.directory.call_key("cart", cart_id, "get", cart_id)
    infos = await sku_info(ctx.pool, [l["sku"] for l in guest["lines"]])
    caps = {s: i.per_customer_cap for s, i in infos.items()}
    return await ctx.directory.call_key("cart", cart_id, "absorb", cart_id, str(user.user_id), guest, caps)
