"""Orders, their lines, history, coupon redemptions, returns, refunds and processed Stripe events.

Every change of an order is one transaction: the order row (guarded by the status it expects, so a
stale or repeated command changes nothing), a history row and the outbox rows of its events. A
Stripe event id is recorded in the same transaction as its effect, so an event is applied once.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from storage.outbox import OutboxRow
from storage.outbox import write as outbox_write

ORDER_COLUMNS = """id, number, cart_id, idempotency_key, request_fingerprint, customer_id::text as customer_id, email, status, currency,
    subtotal_minor, discount_minor, shipping_minor, total_minor, coupon_code, shipping_method, shipping_address,
    reservation_ids, payment_key, payment_intent_id, payment_status, capture_method, captured_minor,
    refunded_minor, failure_message, carrier, tracking_number, version,
    extract(epoch from created_at)::float8 as created_at, extract(epoch from paid_at)::float8 as paid_at,
    extract(epoch from shipped_at)::float8 as shipped_at, extract(epoch from delivered_at)::float8 as delivered_at,
    extract(epoch from cancelled_at)::float8 as cancelled_at, extract(epoch from expires_at)::float8 as expires_at"""


async def find_by_key(conn, cart_id: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"select {ORDER_COLUMNS} from orders where cart_id = $1 and idempotency_key = $2", cart_id, key)


async def get(conn, number: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"select {ORDER_COLUMNS} from orders where number = $1", number)


async def get_by_intent(conn, intent_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"select {ORDER_COLUMNS} from orders where payment_intent_id = $1", intent_id)


async def lines(conn, order_id: int) -> list[asyncpg.Record]:
    return await conn.fetch("select sku, product_id, name, quantity, unit_price_minor, line_total_minor "
                            "from order_lines where order_id = $1 order by sku", order_id)


async def lines_and_history(conn, order_ids: list[int]) -> tuple[dict[int, list[dict]], dict[int, list[dict]]]:
    """The lines and the history of many orders in two queries (lists of orders, not one query per row)."""
    lines: dict[int, list[dict]] = {i: [] for i in order_ids}
    history: dict[int, list[dict]] = {i: [] for i in order_ids}
    for r in await conn.fetch("select order_id, sku, product_id, name, quantity, unit_price_minor, line_total_minor "
                              "from order_lines where order_id = any($1::int8[]) order by order_id, sku", order_ids):
        lines[r["order_id"]].append(dict(r))
    for r in await conn.fetch("select order_id, status, note, actor, extract(epoch from at) as at from order_history "
                              "where order_id = any($1::int8[]) order by order_id, id", order_ids):
        history[r["order_id"]].append(dict(r))
    return lines, history


async def history(conn, order_id: int) -> list[asyncpg.Record]:
    return await conn.fetch("select status, note, actor, extract(epoch from at)::float8 as at from order_history "
                            "where order_id = $1 order by id", order_id)


async def coupon(conn, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "select code, kind, value, currency, min_subtotal_minor, extract(epoch from starts_at)::float8 as starts_at, "
        "extract(epoch from ends_at)::float8 as ends_at, usage_limit, per_customer_limit, times_used, active "
        "from coupons where code = $1", code.upper())


async def coupon_uses_by(conn, code: str, customer_key: str) -> int:
    return await conn.fetchval("select count(*) from coupon_redemptions where code = $1 and customer_key = $2",
                               code.upper(), customer_key)


async def create(conn: asyncpg.Connection, order: dict[str, Any], order_lines: list[dict[str, Any]],
                 outbox: Sequence[OutboxRow], customer_key: str) -> asyncpg.Record | None:
    """Insert an order with its lines, its first history row, a coupon redemption and its events,
    in the caller's transaction. Returns None when the coupon's usage limit was reached meanwhile
    (the caller rolls back). The number comes from a sequence: `ORD-` + digits."""
    number = "ORD-%d" % await conn.fetchval("select nextval('order_number_seq')")
    row = await conn.fetchrow(
        f"""insert into orders (number, cart_id, idempotency_key, customer_id, email, status, currency, subtotal_minor,
                discount_minor, shipping_minor, total_minor, coupon_code, shipping_method, shipping_address,
                reservation_ids, payment_key, capture_method, expires_at, request_fingerprint)
            values ($1, $2, $3, $4::uuid, $5, 'pending_payment', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    to_timestamp($17), $18)
            returning {ORDER_COLUMNS}""",
        number, order["cart_id"], order["idempotency_key"], order["customer_id"], order["email"], order["currency"],
        order["subtotal_minor"], order["discount_minor"], order["shipping_minor"], order["total_minor"],
        order["coupon_code"], order["shipping_method"], order["shipping_address"], order["reservation_ids"],
        f"pay-{number}", order["capture_method"], order["expires_at"], order["request_fingerprint"])
    await conn.execute(
        """insert into order_lines (order_id, sku, product_id, name, quantity, unit_price_minor, line_total_minor)
           select $1, sku, pid, nm, q, up, up * q
           from unnest($2::text[], $3::int8[], $4::text[], $5::int8[], $6::int8[]) as x(sku, pid, nm, q, up)""",
        row["id"], [l["sku"] for l in order_lines], [l["product_id"] for l in order_lines],
        [l["name"] for l in order_lines], [l["quantity"] for l in order_lines], [l["unit_price_minor"] for l in order_lines])
    await conn.execute("insert into order_history (order_id, status, note, actor) values ($1, 'pending_payment', 'order placed', 'checkout')",
                       row["id"])
    if order["coupon_code"]:
        used = await conn.fetchval(
            "update coupons set times_used = times_used + 1 where code = $1 and active "
            "and (usage_limit is null or times_used < usage_limit) returning times_used", order["coupon_code"])
        if used is None:
            return None
        await conn.execute("insert into coupon_redemptions (code, order_id, customer_key) values ($1, $2, $3)",
                           order["coupon_code"], row["id"], customer_key)
    outbox = [OutboxRow(o.event_id, o.topic, number if o.key == "" else o.key, o.type,
                        {**o.payload, "number": number}, o.occurred_at) for o in outbox]
    await outbox_write(conn, outbox)
    return row


async def set_intent(conn, order_id: int, intent_id: str, payment_status: str) -> None:
    await conn.execute("update orders set payment_intent_id = $2, payment_status = $3, updated_at = now() where id = $1",
                       order_id, intent_id, payment_status)


async def set_payment_status(conn, order_id: int, payment_status: str, failure_message: str | None = None) -> None:
    await conn.execute("update orders set payment_status = $2, failure_message = coalesce($3, failure_message), "
                       "updated_at = now() where id = $1", order_id, payment_status, failure_message)


async def record_stripe_event(conn, event_id: str, type_: str, object_id: str | None) -> bool:
    """True when this event is new (the caller applies it in the same transaction)."""
    return await conn.fetchval(
        "insert into stripe_events (event_id, type, object_id) values ($1, $2, $3) on conflict do nothing returning true",
        event_id, type_, object_id) is True


async def transition(conn, order_id: int, from_statuses: Sequence[str], to_status: str, *, note: str | None,
                     actor: str, outbox: Sequence[OutboxRow] = (), **fields: Any) -> asyncpg.Record | None:
    """Move an order to `to_status` if it is in one of `from_statuses`; returns the new row or None."""
    sets = ["status = $3", "updated_at = now()", "version = version + 1"]
    args: list[Any] = [order_id, list(from_statuses), to_status]
    for name, value in fields.items():
        args.append(value)
        if name.endswith("_at") and value == "now":
            args.pop()
            sets.append(f"{name} = now()")
        else:
            sets.append(f"{name} = ${len(args)}")
    row = await conn.fetchrow(
        f"update orders set {', '.join(sets)} where id = $1 and status = any($2::text[]) returning {ORDER_COLUMNS}", *args)
    if row is None:
        return None
    await conn.execute("insert into order_history (order_id, status, note, actor) values ($1, $2, $3, $4)",
                       order_id, to_status, note, actor)
    await outbox_write(conn, outbox)
    return row


async def committed_lines(conn, reservation_ids: list[str]) -> list[asyncpg.Record]:
    """What these reservations sold (their committed lines), e.g. to put back after a refund."""
    return await conn.fetch("select sku, quantity from reservation_lines where reservation_id = any($1::text[]) "
                            "and state = 'committed'", reservation_ids)


async def reservation_committed(conn, reservation_id: str) -> bool:
    """Every line of this reservation is committed (sold), as written by its inventory owners."""
    return bool(await conn.fetchval("select bool_and(state = 'committed') from reservation_lines "
                                    "where reservation_id = $1", reservation_id))


async def release_coupon(conn, order_id: int) -> None:
    code = await conn.fetchval("delete from coupon_redemptions where order_id = $1 returning code", order_id)
    if code is not None:
        await conn.execute("update coupons set times_used = greatest(times_used - 1, 0) where code = $1", code)


async def pending_due(conn, older_than_s: float, limit: int = 200) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"select {ORDER_COLUMNS} from orders where status = 'pending_payment' "
        "and created_at < now() - make_interval(secs => $1) order by created_at limit $2", older_than_s, limit)


async def for_customer(conn, customer_id: str, limit: int = 50, before_id: int | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"select {ORDER_COLUMNS} from orders where customer_id = $1::uuid and ($2::int8 is null or id < $2) "
        "order by id desc limit $3", customer_id, before_id, limit)


async def search(conn, *, status: str | None = None, email: str | None = None, number: str | None = None,
                 limit: int = 50, before_id: int | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {ORDER_COLUMNS} from orders
            where ($1::text is null or status = $1) and ($2::text is null or lower(email) = lower($2))
              and ($3::text is null or number = $3) and ($4::int8 is null or id < $4)
            order by id desc limit $5""", status, email, number, before_id, limit)


async def open_return(conn, order_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("select * from returns where order_id = $1 order by id desc limit 1", order_id)


async def create_return(conn, order_id: int, reason: str, lines: list[dict[str, Any]]) -> asyncpg.Record:
    return await conn.fetchrow("insert into returns (order_id, status, reason, lines) values ($1, 'requested', $2, $3) returning *",
                               order_id, reason, lines)


async def set_return_status(conn, return_id: int, from_status: str, to_status: str, refund_minor: int | None = None) -> bool:
    return await conn.fetchval(
        "update returns set status = $3, refund_minor = coalesce($4, refund_minor), updated_at = now() "
        "where id = $1 and status = $2 returning true", return_id, from_status, to_status, refund_minor) is True


async def add_refund(conn, order_id: int, key: str, amount_minor: int) -> asyncpg.Record | None:
    """Reserve the refund against the capture (the check constraint refuses over-refunds)."""
    row = await conn.fetchrow("select * from refunds where idempotency_key = $1", key)
    if row is not None:
        return row
    ok = await conn.fetchval(
        "update orders set refunded_minor = refunded_minor + $2, updated_at = now() "
        "where id = $1 and refunded_minor + $2 <= captured_minor returning true", order_id, amount_minor)
    if not ok:
        return None
    return await conn.fetchrow("insert into refunds (order_id, idempotency_key, amount_minor, status) "
                               "values ($1, $2, $3, 'pending') returning *", order_id, key, amount_minor)


async def finish_refund(conn, refund_id: int, stripe_refund_id: str, status: str) -> None:
    await conn.execute("update refunds set stripe_refund_id = $2, status = $3 where id = $1", refund_id, stripe_refund_id, status)
