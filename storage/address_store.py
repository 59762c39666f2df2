"""A user's addresses, every personal field encrypted (`storage/crypto.py`). Every statement is
scoped by the owner: another user's address id finds nothing."""
from __future__ import annotations

import uuid

import asyncpg

from storage.crypto import PiiCipher, context_for

FIELDS = ("name", "line1", "line2", "city", "region", "postal")
_COLUMNS = "id, user_id, label, " + ", ".join(f"{f}_enc" for f in FIELDS) + ", country, is_default, created_at, updated_at"


def _decrypt(cipher: PiiCipher, row: asyncpg.Record) -> dict:
    out = {"id": row["id"], "label": row["label"], "country": row["country"].strip(), "is_default": row["is_default"],
           "created_at": row["created_at"], "updated_at": row["updated_at"]}
    for f in FIELDS:
        out[f] = cipher.decrypt(row[f"{f}_enc"], context_for("addresses", f"{f}_enc", row["id"]))
    return out


def _encrypted(cipher: PiiCipher, address_id: uuid.UUID, values: dict) -> dict:
    return {f"{f}_enc": cipher.encrypt(values[f], context_for("addresses", f"{f}_enc", address_id))
            for f in FIELDS if f in values}


async def list_for(pool: asyncpg.Pool, cipher: PiiCipher, user_id: uuid.UUID) -> list[dict]:
    rows = await pool.fetch(f"select {_COLUMNS} from addresses where user_id = $1 order by created_at, id", user_id)
    return [_decrypt(cipher, r) for r in rows]


async def get(pool: asyncpg.Pool, cipher: PiiCipher, user_id: uuid.UUID, address_id: uuid.UUID) -> dict | None:
    row = await pool.fetchrow(f"select {_COLUMNS} from addresses where id = $1 and user_id = $2", address_id, user_id)
    return _decrypt(cipher, row) if row else None


async def create(pool: asyncpg.Pool, cipher: PiiCipher, user_id: uuid.UUID, values: dict) -> dict:
    address_id = uuid.uuid4()  # chosen here: it is bound into the ciphertexts
    enc = _encrypted(cipher, address_id, values)
    async with pool.acquire() as conn, conn.transaction():
        if values.get("is_default"):
            await conn.execute("update addresses set is_default = false where user_id = $1", user_id)
        cols = ["id", "user_id", "label", "country", "is_default", *enc]
        vals = [address_id, user_id, values.get("label", ""), values["country"], bool(values.get("is_default")),
                *enc.values()]
        row = await conn.fetchrow(
            f"insert into addresses ({', '.join(cols)}) values ({', '.join(f'${i + 1}' for i in range(len(cols)))}) "
            f"returning {_COLUMNS}", *vals)
    return _decrypt(cipher, row)


async def update(pool: asyncpg.Pool, cipher: PiiCipher, user_id: uuid.UUID, address_id: uuid.UUID,
                 changes: dict) -> dict | None:
    plain = {k: changes[k] for k in ("label", "country", "is_default") if k in changes}
    sets = {**plain, **_encrypted(cipher, address_id, changes)}
    async with pool.acquire() as conn, conn.transaction():
        assignments = "".join(f"{k} = ${i + 3}, " for i, k in enumerate(sets))
        row = await conn.fetchrow(f"update addresses set {assignments}updated_at = now() "
                                  f"where id = $1 and user_id = $2 returning {_COLUMNS}",
                                  address_id, user_id, *sets.values())
        if row is not None and changes.get("is_default"):
            await conn.execute("update addresses set is_default = false where user_id = $1 and id <> $2",
                               user_id, address_id)
    return _decrypt(cipher, row) if row else None


async def delete(pool: asyncpg.Pool, user_id: uuid.UUID, address_id: uuid.UUID) -> bool:
    status = await pool.execute("delete from addresses where id = $1 and user_id = $2", address_id, user_id)
    return status.endswith(" 1")
