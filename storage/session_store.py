"""Refresh-token families: rotation with reuse detection (only token hashes are stored).

Each refresh marks the presented token used and issues its child in the same family. A used token
presented again means two parties hold it (one of them stole it): the whole family is revoked, so
the thief's newer token dies with it. Sign-out revokes the family."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import asyncpg


@dataclass(frozen=True)
class Rotation:
    outcome: Literal["rotated", "reused", "invalid"]
    user_id: uuid.UUID | None = None
    family_id: uuid.UUID | None = None


async def issue(conn: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID, token_hash: bytes, ttl_s: int,
                family_id: uuid.UUID | None = None, parent_id: uuid.UUID | None = None) -> uuid.UUID:
    family_id = family_id or uuid.uuid4()
    await conn.execute(
        "insert into refresh_tokens (token_hash, user_id, family_id, parent_id, expires_at) "
        "values ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        token_hash, user_id, family_id, parent_id, float(ttl_s))
    return family_id


async def rotate(pool: asyncpg.Pool, token_hash: bytes, new_hash: bytes, ttl_s: int) -> Rotation:
    """One transaction: the row is locked, so two concurrent uses of one token cannot both rotate."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "select id, user_id, family_id, used_at, revoked_at, expires_at > now() as live "
            "from refresh_tokens where token_hash = $1 for update", token_hash)
        if row is None or row["revoked_at"] is not None:
            return Rotation("invalid")
        if row["used_at"] is not None:
            await revoke_family(conn, row["family_id"])
            return Rotation("reused", row["user_id"], row["family_id"])
        if not row["live"]:
            return Rotation("invalid")
        await conn.execute("update refresh_tokens set used_at = now() where id = $1", row["id"])
        await issue(conn, row["user_id"], new_hash, ttl_s, family_id=row["family_id"], parent_id=row["id"])
        return Rotation("rotated", row["user_id"], row["family_id"])


async def revoke_family(conn: asyncpg.Pool | asyncpg.Connection, family_id: uuid.UUID) -> int:
    status = await conn.execute("update refresh_tokens set revoked_at = now() where family_id = $1 "
                                "and revoked_at is null", family_id)
    return int(status.split()[-1])


async def revoke_by_token(pool: asyncpg.Pool, token_hash: bytes) -> bool:
    """Sign-out: revoke the family of this token (whatever state the token itself is in)."""
    family_id = await pool.fetchval("select family_id from refresh_tokens where token_hash = $1", token_hash)
    if family_id is None:
        return False
    await revoke_family(pool, family_id)
    return True


async def revoke_user(conn: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Every session of a user (password change or reset, deactivation)."""
    status = await conn.execute("update refresh_tokens set revoked_at = now() where user_id = $1 "
                                "and revoked_at is null", user_id)
    return int(status.split()[-1])
