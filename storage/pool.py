"""The asyncpg pool every owner and replica uses, and a fail-fast connectivity check."""
from __future__ import annotations

import asyncio
import json

import asyncpg


def _jsonb_encode(value) -> bytes:
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()  # jsonb binary format version 1


def _jsonb_decode(data: bytes):
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, in binary format so COPY (bulk seeding) can carry it too.
    await conn.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`): one more round trip per use of the pool, on every group commit too. Surge's pooled
    connections keep no session state to reset: settings are `SET LOCAL` inside a transaction or
    `server_settings` given at connect time, LISTEN runs on dedicated connections, no advisory locks,
    cursors only inside transactions. An open transaction is still rolled back by asyncpg before this runs."""


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10, timeout_s: float = 5.0,
                      server_settings: dict[str, str] | None = None) -> asyncpg.Pool:
    """A pool whose connections decode jsonb; raises on an unreachable server within `timeout_s`.
    `server_settings` are set on each connection at connect time (no round trip per use)."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_s,
        command_timeout=30,
        init=_init_connection,
        server_settings=server_settings,
        reset=_keep_session,
    )


async def check_database(dsn: str, timeout_s: float = 5.0) -> None:
    """Connect once and run `select 1`; raises OSError/asyncpg errors/TimeoutError on failure."""
    conn = await asyncio.wait_for(asyncpg.connect(dsn, timeout=timeout_s), timeout_s + 1)
    try:
        await conn.fetchval("select 1")
    finally:
        await conn.close()


async def close_quietly(*closing) -> None:
    """Await each close (skipping None); a connection that is already broken cannot fail its owner's
    clean-up. For reconnect loops: `finally: await close_quietly(pool and pool.close(), ...)`."""
    for closer in closing:
        if closer is not None:
            try:
                await closer
            except Exception:  # closing a broken connection: nothing to do
                pass
