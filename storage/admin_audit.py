"""The admin audit log: every admin action, who did it, on what, when. Append-only."""
from __future__ import annotations

import uuid

import asyncpg


async def record(conn: asyncpg.Pool | asyncpg.Connection, actor_id: uuid.UUID | None, actor_email: str | None,
                 action: str, target_type: str, target_id: str | None, detail: dict | None = None) -> int:
    return await conn.fetchval(
        "insert into admin_audit_log (actor_id, actor_email, action, target_type, target_id, detail) "
        "values ($1, $2, $3, $4, $5, $6) returning id",
        actor_id, actor_email, action, target_type, target_id, detail or {})


async def entries(pool: asyncpg.Pool, limit: int = 100, before_id: int | None = None, target_id: str | None = None,
                  actor_id: uuid.UUID | None = None, action: str | None = None) -> list[asyncpg.Record]:
    """Newest first; page with `before_id`."""
    where, args = [], []
    for column, value in (("target_id", target_id), ("actor_id", actor_id), ("action", action)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if before_id is not None:
        args.append(before_id)
        where.append(f"id < ${len(args)}")
    args.append(limit)
    cond = f"where {' and '.join(where)}" if where else ""
    return await pool.fetch(f"select id, actor_id, actor_email, action, target_type, target_id, detail, at "
                            f"from admin_audit_log {cond} order by id desc limit ${len(args)}", *args)
