"""Admin: the notification mailbox (every customer notification, sent by SMTP or kept locally)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from serve_app.deps import Admin, Ctx
from storage.mailbox import list_notifications

router = APIRouter(tags=["admin"])

Kind = Literal["order_placed", "order_paid", "order_shipped", "order_delivered", "order_refunded", "order_cancelled"]


class NotificationOut(BaseModel):
    id: int
    event_id: str
    kind: str
    to_email: str
    subject: str
    body: str
    order_number: str | None
    transport: str
    created_at: datetime
    sent_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_before_id: int | None  # pass as before_id for the next (older) page; null at the end


def _shown(entry: dict) -> dict:
    # a reset mail carries a code that signs in as its owner: an admin may see that it went, not the code
    if entry["kind"] == "password_reset":
        return {**entry, "body": "(withheld: this message carries a password reset code)"}
    return entry


@router.get("/admin/notifications")
async def notifications(
    ctx: Ctx, _: Admin,
    order_number: Annotated[str | None, Query(pattern=r"^ORD-[0-9]+$")] = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> NotificationPage:
    """Notifications, newest first, optionally for one order and/or one kind."""
    entries = await list_notifications(ctx.pool, order_number=order_number, kind=kind, limit=limit, before_id=before_id)
    items = [NotificationOut(**_shown(e.as_dict())) for e in entries]
    return NotificationPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)
