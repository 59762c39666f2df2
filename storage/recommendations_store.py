"""Recommendations from sales: "bought together" (co-purchases) and "trending now" (recent units).

Both read order lines of paid-or-later orders. They are cheap enough to run on a cache miss (an
index on order_lines(product_id) then (order_id, product_id)); the API caches their answers with a
TTL, so a product page never runs them per request.
"""
from __future__ import annotations

from storage.reviews_store import PAID_OR_LATER


async def bought_together(conn, product_id: int, limit: int = 6) -> list[int]:
    """Other active products that share paid orders with this one, most shared orders first."""
    rows = await conn.fetch(
        """select l2.product_id, count(distinct l2.order_id) as orders
           from order_lines l1
           join orders o on o.id = l1.order_id and o.status = any($3::text[])
           join order_lines l2 on l2.order_id = l1.order_id and l2.product_id <> l1.product_id
           join products p on p.id = l2.product_id and p.status = 'active'
           where l1.product_id = $1
           group by l2.product_id order by orders desc, l2.product_id limit $2""",
        product_id, limit, list(PAID_OR_LATER))
    return [r["product_id"] for r in rows]


async def trending(conn, days: int = 7, limit: int = 6) -> list[int]:
    """Active products with the most units in orders paid in the last `days` days."""
    rows = await conn.fetch(
        """select l.product_id, sum(l.quantity) as units
           from orders o join order_lines l on l.order_id = o.id
           join products p on p.id = l.product_id and p.status = 'active'
           where o.paid_at >= now() - make_interval(days => $1) and o.status = any($3::text[])
           group by l.product_id order by units desc, l.product_id limit $2""",
        days, limit, list(PAID_OR_LATER))
    return [r["product_id"] for r in rows]
