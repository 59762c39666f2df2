"""The reservation flow behind `POST /inventory/reservations`, shared by the FastAPI route and the
raw-ASGI fast path (`serve_app/fastpath.py`), so both answer the same thing the same way.

Returns an outcome; refusals are raised as `SurgeError`s for the edge to map to problem+json.
"""
from __future__ import annotations

from dataclasses import dataclass

from actors.domain.errors import ErrorCode, Overloaded, error_for
from serve_app.context import AppContext
from serve_app.schemas import ReserveRequest


@dataclass(frozen=True, slots=True)
class Held:
    reservation_id: str
    expires_at: float | None
    available: dict[str, int]

    def body(self) -> dict:
        return {"reservation_id": self.reservation_id, "state": "held", "expires_at": self.expires_at,
                "available": self.available}


@dataclass(frozen=True, slots=True)
class Queued:
    token: str
    status: str
    position: int

    def body(self) -> dict:
        return {"status": self.status, "queue_token": self.token, "position": self.position,
                "poll": f"/waiting-room/{self.token}"}


async def reserve(ctx: AppContext, body: ReserveRequest, queue_token: str | None) -> Held | Queued:
    """Hold stock, all lines or none; idempotent per reservation_id.

    Past the replica's in-flight limit: `Overloaded` (429), or for a one-SKU reservation of a
    flash-sale product a waiting-room ticket (`Queued`, 202). A ticket whose turn came, sent back
    as `queue_token`, passes the limit once."""
    lines = [(l.sku, l.quantity) for l in body.lines]
    flash_sku = lines[0][0] if len(lines) == 1 and await ctx.flash_skus.contains(lines[0][0]) else None
    room = ctx.waiting_room
    admitted = bool(flash_sku and queue_token and room and await room.claim(queue_token, flash_sku))
    try:
        async with ctx.reserve_limiter.slot(admitted=admitted):
            out = await ctx.inventory.reserve(body.reservation_id, body.owner, lines, body.ttl_s, body.customer_id)
    except Overloaded:
        if flash_sku is None or room is None:
            raise
        if ctx.inventory.known_sold_out(flash_sku):
            raise error_for(ErrorCode.OUT_OF_STOCK, reservation_id=body.reservation_id, available={flash_sku: 0}) from None
        ticket = await room.join(flash_sku)
        place = await room.status(ticket.token)
        return Queued(ticket.token, place.status, place.position)
    if flash_sku and room and flash_sku in out.available:
        sold_out = out.available[flash_sku] <= 0
        if ctx.flash_skus.sold_out_changed(flash_sku, sold_out):
            await room.set_sold_out(flash_sku, sold_out)
    if not out.held:
        raise error_for(out.code or ErrorCode.OUT_OF_STOCK, out.detail, reservation_id=body.reservation_id,
                        available=out.available)
    return Held(out.reservation_id, out.expires_at, out.available)
