"""Outbox rows: events written in the same statement as the change they describe."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class OutboxRow:
    event_id: uuid.UUID
    topic: str
    key: str
    type: str
    payload: dict[str, Any]
    occurred_at: float


def outbox_columns(rows: Iterable[OutboxRow]) -> tuple[list, list, list, list, list, list]:
    """Column arrays for `unnest` (payloads as JSON text, cast to jsonb in SQL)."""
    ids, topics, keys, types, payloads, times = [], [], [], [], [], []
    for r in rows:
        ids.append(r.event_id)
        topics.append(r.topic)
        keys.append(r.key)
        types.append(r.type)
        payloads.append(json.dumps(r.payload, separators=(",", ":")))
        times.append(r.occurred_at)
    return ids, topics, keys, types, payloads, times


# The CTE fragment every owner's commit statement ends with; `$n` placeholders are offset by caller.
def outbox_cte(first_param: int) -> str:
    p = first_param
    return f"""
    outbox_ins as (
        insert into outbox (event_id, topic, key, type, payload, created_at)
        select e, t, k, ty, pl::jsonb, to_timestamp(at)
        from unnest(${p}::uuid[], ${p + 1}::text[], ${p + 2}::text[], ${p + 3}::text[], ${p + 4}::text[], ${p + 5}::float8[])
             as x(e, t, k, ty, pl, at)
        returning 1
    )"""


OUTBOX_CHANNEL = "surge_outbox"


async def write(conn, rows: Iterable[OutboxRow]) -> None:
    """Insert outbox rows in the caller's transaction and wake the relay when it commits (one
    statement). Owners with their own batch statement use `outbox_cte` instead."""
    rows = list(rows)
    if rows:
        await conn.execute(f"with {outbox_cte(1).strip()} select pg_notify('{OUTBOX_CHANNEL}', '')", *outbox_columns(rows))


async def prune_published(conn, older_than_s: float, limit: int) -> int:
    """Delete up to `limit` of the oldest rows relayed more than `older_than_s` ago; never a row
    not yet relayed. Oldest first by id, so the primary key finds them without a scan."""
    status = await conn.execute(
        "delete from outbox where id in (select id from outbox where published_at < now() - make_interval(secs => $1) "
        "order by id limit $2)", older_than_s, limit)
    return int(status.split()[-1])


def stream_name(topic: str) -> str:
    """The Valkey stream an outbox topic is relayed to."""
    return f"surge:events:{topic}"


async def unpublished(conn, limit: int) -> list:
    """The oldest outbox rows not yet relayed, in id order (per key, the order they committed in:
    one owner writes a key, and its commits are sequential)."""
    return await conn.fetch(
        "select id, event_id, topic, key, type, payload::text as payload, extract(epoch from created_at) as at "
        "from outbox where published_at is null order by id limit $1", limit)


async def mark_published(conn, ids: list[int]) -> None:
    await conn.execute("update outbox set published_at = now() where id = any($1::int8[])", ids)
