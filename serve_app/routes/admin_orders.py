"""Admin order processing: list and filter, fulfil, ship with tracking, deliver, cancel, returns,
refunds; and coupons."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query

from actors.domain.errors import ValidationFailed
from serve_app import orders_access
from serve_app.deps import Admin, Ctx
from serve_app.schemas import CouponCreate, IdempotencyKey, OrderView, RefundRequest, ShipRequest
from storage import order_store

router = APIRouter(prefix="/admin", tags=["admin: orders"])
Number = Annotated[str, Path(pattern=r"^ORD-[0-9]{1,18}$")]
Status = Literal["pending_payment", "paid", "fulfilling", "shipped", "delivered", "cancelled", "return_requested",
                 "return_approved", "return_received", "refunded"]


def _actor(admin) -> str:
    return f"admin:{admin.user_id}" if getattr(admin, "user_id", None) else "admin:service"


@router.get("/orders")
async def list_orders(ctx: Ctx, admin: Admin, status: Status | None = None,
                      email: Annotated[str | None, Query(max_length=254)] = None,
                      number: Annotated[str | None, Query(pattern=r"^ORD-[0-9]{1,18}$")] = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50,
                      before_id: Annotated[int | None, Query(ge=1)] = None) -> list[OrderView]:
    async with ctx.pool.acquire() as conn:
        rows = await order_store.search(conn, status=status, email=email, number=number, limit=limit, before_id=before_id)
    return [OrderView(**v) for v in await orders_access.views(ctx, rows)]


@router.get("/orders/{number}")
async def get_order(ctx: Ctx, admin: Admin, number: Number) -> OrderView:
    return OrderView(**await orders_access.view(ctx, await orders_access.order_or_404(ctx, number)))


async def _step(ctx, admin, number: str, method: str, *args, **kwargs) -> OrderView:
    row = await orders_access.order_or_404(ctx, number)
    return OrderView(**await ctx.directory.call_key("order", row["cart_id"], method, number, _actor(admin), *args,
                                                    retry=False, **kwargs))


@router.post("/orders/{number}/fulfil")
async def fulfil(ctx: Ctx, admin: Admin, number: Number) -> OrderView:
    """Start fulfilment (captures an authorised-only payment)."""
    return await _step(ctx, admin, number, "fulfil")


@router.post("/orders/{number}/ship")
async def ship(ctx: Ctx, admin: Admin, number: Number, body: ShipRequest) -> OrderView:
    return await _step(ctx, admin, number, "ship", body.carrier, body.tracking_number)


@router.post("/orders/{number}/deliver")
async def deliver(ctx: Ctx, admin: Admin, number: Number) -> OrderView:
    return await _step(ctx, admin, number, "deliver")


@router.post("/orders/{number}/cancel")
async def cancel(ctx: Ctx, admin: Admin, number: Number) -> OrderView:
    return await _step(ctx, admin, number, "cancel", "cancelled by the store")


@router.post("/orders/{number}/returns/approve")
async def approve_return(ctx: Ctx, admin: Admin, number: Number) -> OrderView:
    return await _step(ctx, admin, number, "approve_return")


@router.post("/orders/{number}/returns/receive")
async def receive_return(ctx: Ctx, admin: Admin, number: Number) -> OrderView:
    """The parcel is back: its units are restocked."""
    return await _step(ctx, admin, number, "receive_return")


@router.post("/orders/{number}/refund", responses={409: {"description": "More than captured and not yet refunded"}})
async def refund(ctx: Ctx, admin: Admin, number: Number, body: RefundRequest,
                 idempotency_key: Annotated[IdempotencyKey, Header()]) -> OrderView:
    """Refund through the payment provider, never more than was captured and not yet refunded."""
    return await _step(ctx, admin, number, "refund", body.amount_minor, f"refund-{number}-{idempotency_key}")


@router.post("/coupons", status_code=201)
async def create_coupon(ctx: Ctx, admin: Admin, body: CouponCreate) -> dict:
    if body.kind == "percent" and body.value > 100:
        raise ValidationFailed("A percent coupon is at most 100.", field="value")
    if body.starts_at is not None and body.ends_at is not None and body.ends_at <= body.starts_at:
        raise ValidationFailed("A coupon must end after it starts.", field="ends_at")
    async with ctx.pool.acquire() as conn:
        created = await conn.fetchval(
            """insert into coupons (code, kind, value, currency, min_subtotal_minor, starts_at, ends_at, usage_limit,
                                    per_customer_limit, active)
               values ($1, $2, $3, $4, $5, to_timestamp($6), to_timestamp($7), $8, $9, $10)
               on conflict (code) do nothing returning true""",
            body.code, body.kind, body.value, body.currency, body.min_subtotal_minor, body.starts_at, body.ends_at,
            body.usage_limit, body.per_customer_limit, body.active)
    if not created:
        raise ValidationFailed("A coupon with this code exists.", field="code")
    return body.model_dump()


@router.get("/coupons")
async def list_coupons(ctx: Ctx, admin: Admin) -> list[dict]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("select code, kind, value, currency, min_subtotal_minor, usage_limit, per_customer_limit, "
                                "times_used, active from coupons order by code")
    return [dict(r) | {"currency": r["currency"].strip()} for r in rows]
