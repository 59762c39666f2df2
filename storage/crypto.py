"""Encryption of personal data at rest (phone numbers, address fields), with key rotation.

Format of a stored value: `v1.<key id>.<base64url(12-byte nonce || AES-256-GCM ciphertext+tag)>`.
The key id says which key decrypts it, so keys rotate: the newest key encrypts, every listed key
still decrypts, and `reencrypt_all` rewrites the rows whose key id is not the newest (after which
the old key can be dropped). The associated data binds a ciphertext to its row and field
(`users.phone:<id>`), so a value copied into another row or column does not decrypt.
"""
from __future__ import annotations

import base64
import os
import re
import secrets

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class DecryptionError(Exception):
    pass


def generate_key(kid: str | None = None) -> str:
    """A new key entry for `SURGE_PII_KEYS`: `kid:base64(32 random bytes)`."""
    kid = kid or f"k{secrets.token_hex(4)}"
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """`kid:key,kid:key` (newest first) → [(kid, 32-byte key)]; raises ValueError on anything malformed."""
    keys: list[tuple[str, bytes]] = []
    for entry in (e.strip() for e in spec.replace("\n", ",").split(",")):
        if not entry:
            continue
        kid, sep, b64 = entry.partition(":")
        if not sep or not _KID.match(kid):
            raise ValueError("each PII key must be `kid:base64key` with a short alphanumeric kid")
        try:
            key = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except ValueError:
            raise ValueError(f"PII key {kid!r} is not base64") from None
        if len(key) != 32:
            raise ValueError(f"PII key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
        if any(k == kid for k, _ in keys):
            raise ValueError(f"PII key id {kid!r} listed twice")
        keys.append((kid, key))
    if not keys:
        raise ValueError("no PII keys given")
    return keys


class PiiCipher:
    def __init__(self, keys: list[tuple[str, bytes]]):
        if not keys:
            raise ValueError("at least one key")
        self.primary_kid = keys[0][0]
        self._keys = {kid: AESGCM(key) for kid, key in keys}

    @classmethod
    def from_spec(cls, spec: str) -> "PiiCipher":
        return cls(parse_keys(spec))

    def encrypt(self, plaintext: str | None, context: str) -> str | None:
        if plaintext is None:
            return None
        nonce = os.urandom(12)
        ct = self._keys[self.primary_kid].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_VERSION}.{self.primary_kid}.{base64.urlsafe_b64encode(nonce + ct).decode().rstrip('=')}"

    def decrypt(self, stored: str | None, context: str) -> str | None:
        if stored is None:
            return None
        try:
            version, kid, b64 = stored.split(".", 2)
            raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except ValueError:
            raise DecryptionError("not an encrypted value") from None
        if version != _VERSION or kid not in self._keys:
            raise DecryptionError(f"unknown format or key id {kid!r}")
        try:
            return self._keys[kid].decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag:
            raise DecryptionError("ciphertext does not authenticate (wrong key, row or field)") from None

    def key_id(self, stored: str) -> str:
        return stored.split(".", 2)[1]

    def rotate(self, stored: str | None, context: str) -> str | None:
        """The value under the newest key (unchanged if it already is)."""
        if stored is None or self.key_id(stored) == self.primary_kid:
            return stored
        return self.encrypt(self.decrypt(stored, context), context)


# (table, encrypted columns); every table has a uuid `id` that is part of the associated data
ENCRYPTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("phone_enc",),
    "addresses": ("name_enc", "line1_enc", "line2_enc", "city_enc", "region_enc", "postal_enc"),
}


def context_for(table: str, column: str, row_id) -> str:
    return f"{table}.{column.removesuffix('_enc')}:{row_id}"


async def reencrypt_all(pool: asyncpg.Pool, cipher: PiiCipher, batch: int = 500) -> int:
    """Rewrite every encrypted value not under the newest key; returns the rows changed.
    Safe to run while the store serves traffic (each row is rewritten only if unchanged since read)."""
    changed = 0
    prefix = f"{_VERSION}.{cipher.primary_kid}."
    for table, columns in ENCRYPTED_COLUMNS.items():
        stale = " or ".join(f"({c} is not null and left({c}, {len(prefix)}) <> $1)" for c in columns)
        while True:
            rows = await pool.fetch(f"select id, {', '.join(columns)} from {table} where {stale} limit {batch}", prefix)
            if not rows:
                break
            for row in rows:
                new = [cipher.rotate(row[c], context_for(table, c, row["id"])) for c in columns]
                sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
                guards = " and ".join(f"{c} is not distinct from ${i + 2 + len(columns)}" for i, c in enumerate(columns))
                status = await pool.execute(f"update {table} set {sets} where id = $1 and {guards}",
                                            row["id"], *new, *[row[c] for c in columns])
                changed += int(status.split()[-1])
    return changed
