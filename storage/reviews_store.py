"""Reviews and the rating aggregates on `products`, kept current in the transaction that changes them.

One review per customer per product (a unique key; writing again updates it). A review is
`verified` when the customer has a paid-or-later order containing the product. New and edited
reviews wait for moderation (`pending`); only `approved` ones are public and counted.
"""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from storage.catalog_store import write_catalog_event

# An order that was paid, whatever happened after (a refund does not unmake the purchase).
PAID_OR_LATER = ("paid", "fulfilling", "shipped", "delivered", "return_requested", "return_approved",
                 "return_received", "refunded")
STATUSES = ("pending", "approved", "hidden")

_COLUMNS = ("r.id, r.product_id, p.slug as product_slug, r.customer_id, r.author_name, r.rating, r.title, r.body, "
            "r.verified, r.status, r.created_at, r.updated_at")


def _dict(row) -> dict[str, Any]:
    d = dict(row)
    d["customer_id"] = str(d["customer_id"])
    d["created_at"] = d["created_at"].isoformat()
    d["updated_at"] = d["updated_at"].isoformat()
    return d


async def _refresh_rating(conn, product_id: int) -> None:
    await conn.execute(
        """update products p set rating_count = x.n, rating_sum = x.s,
               rating_avg = case when x.n > 0 then round(x.s::numeric / x.n, 2) else 0 end
           from (select count(*)::int n, coalesce(sum(rating), 0)::int s from reviews
                 where product_id = $1 and status = 'approved') x
           where p.id = $1""", product_id)


async def _changed(conn, product_id: int, slug: str) -> None:
    await write_catalog_event(conn, f"product:{product_id}", "ProductRatingChanged", {"product_id": product_id, "slug": slug})


async def has_bought(conn, customer_id: uuid.UUID, product_id: int) -> bool:
    return bool(await conn.fetchval(
        """select exists (select 1 from orders o join order_lines l on l.order_id = o.id
                          where o.customer_id = $1 and l.product_id = $2 and o.status = any($3::text[]))""",
        customer_id, product_id, list(PAID_OR_LATER)))


async def upsert_review(pool: asyncpg.Pool, product_id: int, customer_id: uuid.UUID, rating: int, title: str,
                        body: str, author_name: str = "") -> dict[str, Any]:
    """Create or replace this customer's review of the product; it goes (back) to `pending`."""
    async with pool.acquire() as conn, conn.transaction():
        slug = await conn.fetchval("select slug from products where id = $1 and status = 'active'", product_id)
        if slug is None:
            raise LookupError(product_id)
        verified = await has_bought(conn, customer_id, product_id)
        rid = await conn.fetchval(
            """insert into reviews (product_id, customer_id, author_name, rating, title, body, verified)
               values ($1, $2, $3, $4, $5, $6, $7)
               on conflict (product_id, customer_id) do update set rating = excluded.rating, title = excluded.title,
                   body = excluded.body, author_name = excluded.author_name, verified = excluded.verified,
                   status = 'pending', updated_at = now()
               returning id""", product_id, customer_id, author_name, rating, title, body, verified)
        await _refresh_rating(conn, product_id)
        await _changed(conn, product_id, slug)
        return _dict(await conn.fetchrow(f"select {_COLUMNS} from reviews r join products p on p.id = r.product_id "
                                         "where r.id = $1", rid))


async def delete_review(pool: asyncpg.Pool, product_id: int, customer_id: uuid.UUID) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        slug = await conn.fetchval("delete from reviews r using products p where p.id = r.product_id and "
                                   "r.product_id = $1 and r.customer_id = $2 returning p.slug", product_id, customer_id)
        if slug is None:
            return False
        await _refresh_rating(conn, product_id)
        await _changed(conn, product_id, slug)
        return True


async def moderate(pool: asyncpg.Pool, review_id: int, status: str, moderator: str) -> dict[str, Any] | None:
    if status not in STATUSES:
        raise ValueError(status)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("update reviews set status = $2, moderated_by = $3, updated_at = now() where id = $1 "
                                  "returning product_id", review_id, status, moderator)
        if row is None:
            return None
        await _refresh_rating(conn, row["product_id"])
        out = await conn.fetchrow(f"select {_COLUMNS} from reviews r join products p on p.id = r.product_id "
                                  "where r.id = $1", review_id)
        await _changed(conn, row["product_id"], out["product_slug"])
        return _dict(out)


async def own_review(conn, product_id: int, customer_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"select {_COLUMNS} from reviews r join products p on p.id = r.product_id "
                              "where r.product_id = $1 and r.customer_id = $2", product_id, customer_id)
    return None if row is None else _dict(row)


async def approved_reviews(conn, product_id: int, limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"select {_COLUMNS} from reviews r join products p on p.id = r.product_id "
                            "where r.product_id = $1 and r.status = 'approved' order by r.created_at desc, r.id desc "
                            "limit $2 offset $3", product_id, limit, offset)
    return [_dict(r) for r in rows]


async def reviews_by_status(conn, status: str, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"select {_COLUMNS} from reviews r join products p on p.id = r.product_id "
                            "where r.status = $1 order by r.created_at, r.id limit $2 offset $3", status, limit, offset)
    return [_dict(r) for r in rows]


async def rating_of(conn, product_id: int) -> dict[str, Any]:
    row = await conn.fetchrow("select rating_avg, rating_count from products where id = $1", product_id)
    return {"average": float(row["rating_avg"]), "count": row["rating_count"]}
