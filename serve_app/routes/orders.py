"""A customer's orders: history, detail with tracking, cancel, return request, payment refresh.
Reads go to Postgres directly; changes go to the order's pipeline."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from serve_app import orders_access
from serve_app.deps import Ctx, CurrentUser, OptionalUser
from serve_app.schemas import OrderView, ReturnRequest
from storage import order_store

router = APIRouter(prefix="/orders", tags=["orders"])
Number = Annotated[str, Path(pattern=r"^ORD-[0-9]{1,18}$")]


@router.get("")
async def my_orders(ctx: Ctx, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                    before_id: Annotated[int | None, Query(ge=1)] = None) -> list[OrderView]:
    """The signed-in customer's orders, newest first."""
    if user.user_id is None:
        return []  # the service token has no orders of its own
    async with ctx.pool.acquire() as conn:
        rows = await order_store.for_customer(conn, str(user.user_id), limit, before_id)
    return [OrderView(**v) for v in await orders_access.views(ctx, rows)]


@router.get("/{number}")
async def get_order(ctx: Ctx, request: Request, user: OptionalUser, number: Number) -> OrderView:
    row = await orders_access.order_for(ctx, request, user, number)
    return OrderView(**await orders_access.view(ctx, row))


@router.post("/{number}/payment/refresh")
async def refresh_payment(ctx: Ctx, request: Request, user: OptionalUser, number: Number) -> OrderView:
    """After the shopper completed 3-D Secure: fetch the payment's state now rather than wait for
    the webhook."""
    row = await orders_access.order_for(ctx, request, user, number)
    return OrderView(**await ctx.directory.call_key("order", row["cart_id"], "refresh_payment", number))


@router.post("/{number}/cancel")
async def cancel(ctx: Ctx, request: Request, user: OptionalUser, number: Number) -> OrderView:
    """Cancel before fulfilment starts: the stock goes back, a payment is refunded."""
    row = await orders_access.order_for(ctx, request, user, number)
    return OrderView(**await ctx.directory.call_key("order", row["cart_id"], "cancel", number, _who(user),
                                                    "cancelled by the customer", customer=True, retry=False))


@router.post("/{number}/returns", status_code=201)
async def request_return(ctx: Ctx, request: Request, user: OptionalUser, number: Number, body: ReturnRequest) -> OrderView:
    """Ask to return a delivered order (or some of its lines) within the return window."""
    row = await orders_access.order_for(ctx, request, user, number)
    lines = [l.model_dump() for l in body.lines] if body.lines else None
    return OrderView(**await ctx.directory.call_key("order", row["cart_id"], "request_return", number, _who(user),
                                                    body.reason, lines, retry=False))


def _who(user) -> str:
    if user is None:
        return "guest"
    return f"user:{user.user_id}" if user.user_id else "service"
