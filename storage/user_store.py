"""Users, password-reset tokens and the admin support view (SQL for the accounts aggregate).

Emails are unique case-insensitively (`lower(email)` index); the phone is stored encrypted
(`storage/crypto.py`, associated data `users.phone:<id>`)."""
from __future__ import annotations

import uuid

import asyncpg

USER_COLUMNS = "id, email, role, status, name, phone_enc, created_at, updated_at, deactivated_at"


async def create(pool: asyncpg.Pool, email: str, password_hash: str, name: str = "",
                 role: str = "customer") -> asyncpg.Record | None:
    """The new user, or None when the email is taken."""
    return await pool.fetchrow(
        f"insert into users (email, password_hash, name, role) values ($1, $2, $3, $4) "
        f"on conflict ((lower(email))) do nothing returning {USER_COLUMNS}", email, password_hash, name, role)


async def credentials(pool: asyncpg.Pool, email: str) -> asyncpg.Record | None:
    return await pool.fetchrow("select id, email, role, status, password_hash from users where lower(email) = lower($1)",
                               email)


async def get(pool: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow(f"select {USER_COLUMNS} from users where id = $1", user_id)


async def password_hash(pool: asyncpg.Pool, user_id: uuid.UUID) -> str | None:
    return await pool.fetchval("select password_hash from users where id = $1", user_id)


async def auth_state(pool: asyncpg.Pool, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow("select email, role, status from users where id = $1", user_id)


async def set_password(conn: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID, new_hash: str) -> None:
    await conn.execute("update users set password_hash = $2, updated_at = now() where id = $1", user_id, new_hash)


async def update_profile(pool: asyncpg.Pool, user_id: uuid.UUID, changes: dict) -> asyncpg.Record | None:
    """`changes`: any of name, phone_enc (None clears the phone)."""
    allowed = {k: v for k, v in changes.items() if k in ("name", "phone_enc")}
    if not allowed:
        return await get(pool, user_id)
    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(allowed))
    return await pool.fetchrow(f"update users set {sets}, updated_at = now() where id = $1 returning {USER_COLUMNS}",
                               user_id, *allowed.values())


async def set_status(conn: asyncpg.Connection, user_id: uuid.UUID, status: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"update users set status = $2, updated_at = now(), "
        f"deactivated_at = case when $2 = 'deactivated' then now() else null end "
        f"where id = $1 returning {USER_COLUMNS}", user_id, status)


async def set_role(conn: asyncpg.Connection, user_id: uuid.UUID, role: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"update users set role = $2, updated_at = now() where id = $1 returning {USER_COLUMNS}",
                               user_id, role)


async def search(pool: asyncpg.Pool, q: str | None, role: str | None, status: str | None, limit: int,
                 offset: int) -> tuple[list[asyncpg.Record], int]:
    """Users whose email or name contains `q` (case-insensitive; trigram index), newest first, and the total."""
    where, args = [], []
    if q:
        args.append("%" + _escape_like(q.lower()) + "%")
        where.append(f"(lower(email) || ' ' || lower(name)) like ${len(args)}")
    if role:
        args.append(role)
        where.append(f"role = ${len(args)}")
    if status:
        args.append(status)
        where.append(f"status = ${len(args)}")
    cond = f"where {' and '.join(where)}" if where else ""
    total = await pool.fetchval(f"select count(*) from users {cond}", *args)
    rows = await pool.fetch(f"select {USER_COLUMNS} from users {cond} order by created_at desc, id "
                            f"limit {int(limit)} offset {int(offset)}", *args)
    return rows, total


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- password reset ------------------------------------------------------------------------------

async def create_reset_token(conn: asyncpg.Connection, user_id: uuid.UUID, token_hash: bytes, ttl_s: int) -> None:
    await conn.execute("insert into password_reset_tokens (token_hash, user_id, expires_at) "
                       "values ($1, $2, now() + make_interval(secs => $3))", token_hash, user_id, float(ttl_s))


async def consume_reset_token(conn: asyncpg.Connection, token_hash: bytes) -> uuid.UUID | None:
    """Marks a valid (unused, unexpired) token used and returns its user, once; every other
    outstanding reset token of that user is spent with it."""
    user_id = await conn.fetchval(
        "update password_reset_tokens set used_at = now() where token_hash = $1 and used_at is null "
        "and expires_at > now() returning user_id", token_hash)
    if user_id is not None:
        await conn.execute("update password_reset_tokens set used_at = now() where user_id = $1 and used_at is null",
                           user_id)
    return user_id
