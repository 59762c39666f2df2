"""Who may see an order: its customer, an admin, or a guest holding the order's signed token.
Anyone else gets 404 (never 403: an order number must not be confirmed to a stranger)."""
from __future__ import annotations

from fastapi import Request

from actors.domain.errors import NotFound
from actors.order_lifecycle import order_view
from serve_app.context import AppContext
from serve_app.principal import Principal
from storage import order_store

HEADER = "x-order-token"


async def order_or_404(ctx: AppContext, number: str):
    async with ctx.pool.acquire() as conn:
        row = await order_store.get(conn, number)
    if row is None:
        raise NotFound("Order not found.")
    return row


async def order_for(ctx: AppContext, request: Request, user: Principal | None, number: str):
    """The order row if this caller may see it, else NotFound."""
    row = await order_or_404(ctx, number)
    if user is not None and (user.is_admin or (user.user_id is not None and str(user.user_id) == row["customer_id"])):
        return row
    token = request.headers.get(HEADER) or request.query_params.get("token")
    if row["customer_id"] is None and ctx.order_tokens.grants(token, number):
        return row
    raise NotFound("Order not found.")


async def views(ctx: AppContext, rows) -> list[dict]:
    """Order views for many rows: two queries in all, whatever the number of orders."""
    if not rows:
        return []
    async with ctx.pool.acquire() as conn:
        lines, history = await order_store.lines_and_history(conn, [r["id"] for r in rows])
    return [order_view(r, lines[r["id"]], history[r["id"]]) for r in rows]


async def view(ctx: AppContext, row) -> dict:
    return (await views(ctx, [row]))[0]
