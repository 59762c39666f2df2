"""Stock levels, reservations (carts and checkout hold stock through these), and admin stock control."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import JSONResponse

from actors.domain.errors import ErrorCode, NotFound, error_for
from serve_app import reservations
from serve_app.deps import Admin, Ctx
from serve_app.schemas import (AdjustRequest, CommitRequest, IdempotencyKey, Reservation, ReserveRequest, Sku, StockLevel,
                               StockSettings)
from storage import inventory_store

router = APIRouter(tags=["inventory"])


@router.get("/inventory/levels")
async def levels(ctx: Ctx, sku: Annotated[list[Sku], Query(min_length=1, max_length=200)]) -> dict[str, StockLevel]:
    """Stock levels for many SKUs at once; unknown SKUs are left out."""
    return await ctx.inventory.levels(sku)


@router.post("/inventory/reservations", status_code=status.HTTP_201_CREATED,
             responses={202: {"description": "Flash sale overloaded: queued in the waiting room (queue token, position)"},
                        409: {"description": "Not enough stock, or per-customer cap reached"},
                        429: {"description": "Overloaded: retry after the Retry-After seconds"}})
async def reserve(ctx: Ctx, body: ReserveRequest,
                  x_queue_token: Annotated[str | None, Header(max_length=200)] = None) -> Reservation:
    """Hold stock for a cart or an order, all lines or none. Idempotent per reservation_id.

    Past the replica's in-flight limit the API sheds load: 429 + Retry-After, or, for a one-SKU
    reservation of a flash-sale product, 202 with a waiting-room ticket. A shopper whose ticket
    was admitted sends it back as `X-Queue-Token` and is let through. (Valid requests are usually
    answered by `serve_app/fastpath.py` with the same flow; this route documents it and answers
    whatever the fast path passes on.)"""
    outcome = await reservations.reserve(ctx, body, x_queue_token)
    if isinstance(outcome, reservations.Queued):
        return JSONResponse(outcome.body(), status_code=202, headers={"Retry-After": "1"})
    return Reservation(**outcome.body())


@router.get("/waiting-room/{queue_token}")
async def waiting_room_status(ctx: Ctx, queue_token: str) -> dict:
    """A waiting shopper's place: `waiting` (with `position`), `admitted` (send the token back as
    `X-Queue-Token` when reserving), or `sold_out`. Tickets are admitted strictly in order, as
    replicas have room."""
    if ctx.waiting_room is None:
        raise NotFound("No waiting room is running.")
    try:
        sku, _ = ctx.waiting_room.parse(queue_token)
    except ValueError:
        raise NotFound("Unknown queue token.") from None
    await ctx.waiting_room.admit(sku, ctx.reserve_limiter.free)
    place = await ctx.waiting_room.status(queue_token)
    return {"status": place.status, "position": place.position, "sku": sku}


@router.delete("/inventory/reservations/{reservation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def release(ctx: Ctx, reservation_id: str) -> None:
    """Return held stock now. Releasing an unknown or already released reservation is a no-op."""
    if not await ctx.inventory.release(reservation_id):
        raise error_for(ErrorCode.INVALID_TRANSITION, "A committed reservation cannot be released.",
                        reservation_id=reservation_id)


@router.post("/inventory/reservations/{reservation_id}/commit")
async def commit(ctx: Ctx, reservation_id: str, body: CommitRequest, _: Admin) -> Reservation:
    """Turn a hold into a sale (the order pipeline calls this once payment succeeded)."""
    out = await ctx.inventory.commit(reservation_id, body.skus)
    if not out["ok"]:
        raise error_for(out["code"] or ErrorCode.INVALID_TRANSITION, reservation_id=reservation_id)
    return Reservation(reservation_id=reservation_id, state="committed")


@router.put("/admin/inventory/{sku}")
async def set_stock(ctx: Ctx, sku: Sku, body: StockSettings, _: Admin) -> StockLevel:
    """Create a SKU's stock or set its absolute on-hand count and settings."""
    result = await ctx.inventory.upsert(sku, body.on_hand, body.low_stock_threshold, body.per_customer_cap)
    if not result["ok"]:
        raise error_for(result["code"], "on_hand cannot go below the units currently reserved.", sku=sku)
    return (await ctx.inventory.levels([sku]))[sku]


@router.post("/admin/inventory/{sku}/adjust")
async def adjust(ctx: Ctx, sku: Sku, body: AdjustRequest, _: Admin, response: Response,
                 idempotency_key: Annotated[IdempotencyKey | None, Header()] = None) -> StockLevel:
    """Restock (delta > 0) or write off (delta < 0) with a reason; a write-off never takes held units.

    With an `Idempotency-Key` the change is applied once: a retry answers the current level with
    `Idempotent-Replayed: true`; the same key for a different change is a 409 `idempotency_conflict`.
    Without one, a retry after a lost answer may apply the change twice."""
    result = await ctx.inventory.adjust(sku, body.delta, body.reason, idempotency_key)
    if not result["ok"]:
        if result["code"] == ErrorCode.IDEMPOTENCY_CONFLICT.value:
            raise error_for(result["code"], sku=sku)
        raise error_for(result["code"], "The write-off is larger than the available units.", sku=sku,
                        available=result["level"]["available"])
    if result.get("replayed"):
        response.headers["Idempotent-Replayed"] = "true"
    return result["level"]


@router.get("/admin/inventory/low-stock")
async def low_stock(ctx: Ctx, _: Admin) -> list[StockLevel]:
    return await ctx.inventory.low_stock()


@router.get("/admin/inventory/{sku}/movements")
async def movements(ctx: Ctx, sku: Sku, _: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> list[dict]:
    """Movement history, newest first (page with before_id)."""
    rows = await inventory_store.movements(ctx.pool, sku, limit, before_id)
    if not rows and not await ctx.inventory.levels([sku]):
        raise NotFound(f"Unknown SKU {sku}.", sku=sku)
    return [{**dict(r), "at": r["at"].isoformat()} for r in rows]
