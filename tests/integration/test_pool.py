"""The shared asyncpg pool: released connections skip asyncpg's reset query, yet a transaction a
user left open never leaks into the next user of the same connection."""
import pytest

from storage.pool import create_pool

pytestmark = pytest.mark.integration


async def test_an_open_transaction_is_rolled_back_when_its_connection_goes_back_to_the_pool(stack):
    pool = await create_pool(stack.urls.database, min_size=1, max_size=1)  # one connection: the next user gets it
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("select pg_backend_pid()")
            tx = conn.transaction()
            await tx.start()  # never committed: an unmanaged transaction left open
            await conn.execute("create temporary table left_open (x int) on commit drop")
            await conn.execute("set local statement_timeout = 12345")
        async with pool.acquire() as conn:
            assert await conn.fetchval("select pg_backend_pid()") == pid
            assert not conn.is_in_transaction()
            assert await conn.fetchval("select to_regclass('pg_temp.left_open')") is None
            assert await conn.fetchval("show statement_timeout") != "12345ms"
    finally:
        await pool.close()
