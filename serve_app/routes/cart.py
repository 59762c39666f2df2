"""The shopper's cart: lines, quantities, saved-for-later, coupon; guests and signed-in customers."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from actors.domain.errors import CouponInvalid, NotFound
from serve_app import cart_session
from serve_app.deps import Ctx, OptionalUser
from serve_app.principal import Principal
from serve_app.schemas import AddToCart, ApplyCoupon, CartView, SetQuantity, Sku
from storage import order_store
from storage.catalog_prices import sku_info

router = APIRouter(prefix="/cart", tags=["cart"])
SkuPath = Annotated[Sku, Path()]


def _customer(user: Principal | None) -> str | None:
    return str(user.user_id) if user is not None and user.user_id is not None else None


async def _view(ctx, user, cart: dict | None, info=None) -> dict:
    return await cart_session.priced(ctx, cart, _customer(user), known={info.sku: info} if info else None)


async def _sellable(ctx, sku: str):
    info = (await sku_info(ctx.pool, [sku])).get(sku)
    if info is None or not info.active:
        raise NotFound("No such product for sale.", sku=sku)
    return info


@router.get("")
async def get_cart(ctx: Ctx, request: Request, response: Response, user: OptionalUser) -> CartView:
    cart_id = await cart_session.resolve(ctx, request, response, user, create=False)
    cart = await ctx.directory.call_key("cart", cart_id, "get", cart_id) if cart_id else None
    view = await _view(ctx, user, cart)
    view["id"] = cart_id
    return CartView(**view)


@router.post("/items", status_code=201, responses={404: {"description": "Unknown SKU"},
                                                   409: {"description": "Sold out (flash sale) or per-customer cap"}})
async def add_item(ctx: Ctx, request: Request, response: Response, user: OptionalUser, body: AddToCart) -> CartView:
    """Add units of a SKU. A flash-sale product is held at once (the line shows the countdown)."""
    info = await _sellable(ctx, body.sku)
    cart_id = await cart_session.resolve(ctx, request, response, user, create=True)
    # adding is not idempotent: never re-sent after it may have reached the owner
    cart = await ctx.directory.call_key("cart", cart_id, "set_item", cart_id, _customer(user), body.sku, body.quantity,
                                        add=True, flash=info.flash_sale, cap=info.per_customer_cap, retry=False)
    return CartView(**await _view(ctx, user, cart, info))


@router.put("/items/{sku}")
async def set_quantity(ctx: Ctx, request: Request, response: Response, user: OptionalUser, sku: SkuPath,
                       body: SetQuantity) -> CartView:
    info = await _sellable(ctx, sku)
    cart_id = await cart_session.resolve(ctx, request, response, user, create=True)
    cart = await ctx.directory.call_key("cart", cart_id, "set_item", cart_id, _customer(user), sku, body.quantity,
                                        flash=info.flash_sale, cap=info.per_customer_cap)
    return CartView(**await _view(ctx, user, cart, info))


async def _existing(ctx, request, response, user) -> str:
    cart_id = await cart_session.resolve(ctx, request, response, user, create=False)
    if cart_id is None:
        raise NotFound("There is no cart yet.")
    return cart_id


@router.delete("/items/{sku}")
async def remove_item(ctx: Ctx, request: Request, response: Response, user: OptionalUser, sku: SkuPath) -> CartView:
    cart_id = await _existing(ctx, request, response, user)
    return CartView(**await _view(ctx, user, await ctx.directory.call_key("cart", cart_id, "remove_item", cart_id, sku)))


@router.post("/items/{sku}/save-for-later")
async def save_for_later(ctx: Ctx, request: Request, response: Response, user: OptionalUser, sku: SkuPath) -> CartView:
    cart_id = await _existing(ctx, request, response, user)
    return CartView(**await _view(ctx, user, await ctx.directory.call_key("cart", cart_id, "save_for_later", cart_id, sku)))


@router.post("/saved/{sku}/move-to-cart")
async def move_to_cart(ctx: Ctx, request: Request, response: Response, user: OptionalUser, sku: SkuPath) -> CartView:
    info = await _sellable(ctx, sku)
    cart_id = await _existing(ctx, request, response, user)
    cart = await ctx.directory.call_key("cart", cart_id, "move_to_cart", cart_id, _customer(user), sku,
                                        flash=info.flash_sale, cap=info.per_customer_cap)
    return CartView(**await _view(ctx, user, cart, info))


@router.post("/coupon", responses={422: {"description": "Invalid coupon"}})
async def apply_coupon(ctx: Ctx, request: Request, response: Response, user: OptionalUser, body: ApplyCoupon) -> CartView:
    """Apply a coupon code. An unknown, expired or used-up code is refused ("Invalid coupon …");
    one that exists but does not fit the cart yet (minimum subtotal) is kept and says why."""
    code = body.code.strip().upper()
    async with ctx.pool.acquire() as conn:
        row = await order_store.coupon(conn, code)
    if row is None:
        raise CouponInvalid("Invalid coupon: unknown code.", coupon=code)
    cart_id = await _existing(ctx, request, response, user)
    view = await _view(ctx, user, await ctx.directory.call_key("cart", cart_id, "set_coupon", cart_id, code))
    if view["coupon_error"] and view["coupon_error"].startswith("Invalid coupon"):
        await ctx.directory.call_key("cart", cart_id, "set_coupon", cart_id, None)
        raise CouponInvalid(view["coupon_error"], coupon=code)
    return CartView(**view)


@router.delete("/coupon")
async def remove_coupon(ctx: Ctx, request: Request, response: Response, user: OptionalUser) -> CartView:
    cart_id = await _existing(ctx, request, response, user)
    return CartView(**await _view(ctx, user, await ctx.directory.call_key("cart", cart_id, "set_coupon", cart_id, None)))


@router.post("/merge")
async def merge_guest_cart(ctx: Ctx, request: Request, response: Response, user: OptionalUser) -> CartView:
    """After sign-in: move the guest cart (cookie or X-Cart-Token) into the customer's cart."""
    if user is None or user.user_id is None:
        raise NotFound("Sign in to merge a cart.")
    merged = await cart_session.merge_into_customer(ctx, request, user)
    response.delete_cookie(cart_session.COOKIE, path="/")
    return CartView(**await _view(ctx, user, merged))
