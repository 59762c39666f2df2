"""Stripe webhooks: verified on the raw body, handed to the order's pipeline, applied once per
event id (the pipeline records the id in the transaction that applies it)."""
from __future__ import annotations

from fastapi import APIRouter, Request

from actors.domain.payment_events import parse_event
from serve_app.deps import Ctx

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks/stripe", responses={400: {"description": "Bad or stale signature: nothing changes"}})
async def stripe_webhook(ctx: Ctx, request: Request) -> dict:
    payload = await request.body()
    event = parse_event(ctx.gateway.verify_webhook(payload, request.headers.get("stripe-signature")))
    cart_id = (event.metadata or {}).get("cart_id")
    if not event.is_intent_event or not cart_id or not event.intent_id:
        return {"received": True, "applied": False}
    result = await ctx.directory.call_key("order", cart_id, "payment_event", {
        "event_id": event.event_id, "type": event.type, "intent_id": event.intent_id,
        "metadata": event.metadata}, retry=True)
    return {"received": True, **result}
