"""Password hashing: Argon2id (argon2-cffi), at least at OWASP's minimum (m=19 MiB, t=2, p=1).

Hashing costs tens of milliseconds of CPU and ~19 MiB, so the async entry points run it in a
thread (never on the event loop). Verifying an unknown account runs against a dummy hash, so a
sign-in takes the same time whether or not the email exists.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

OWASP_MIN_MEMORY_KIB = 19_456
OWASP_MIN_TIME_COST = 2
OWASP_MIN_PARALLELISM = 1


@dataclass(frozen=True)
class Verified:
    ok: bool
    new_hash: str | None = None  # set when the stored hash used older parameters: store this one


class PasswordHasher:
    def __init__(self, memory_kib: int = OWASP_MIN_MEMORY_KIB, time_cost: int = OWASP_MIN_TIME_COST,
                 parallelism: int = OWASP_MIN_PARALLELISM):
        if memory_kib < OWASP_MIN_MEMORY_KIB or time_cost < OWASP_MIN_TIME_COST or parallelism < OWASP_MIN_PARALLELISM:
            raise ValueError("Argon2id parameters below OWASP's minimum (m=19 MiB, t=2, p=1)")
        self._argon = _Argon2(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
                              hash_len=32, salt_len=16, type=Type.ID)
        # a real hash of a random password: unknown accounts are verified against it
        self._dummy = self._argon.hash("surge-dummy-password-for-timing")

    @property
    def parameters(self):
        return self._argon.time_cost, self._argon.memory_cost, self._argon.parallelism

    def hash_sync(self, password: str) -> str:
        return self._argon.hash(password)

    def verify_sync(self, stored_hash: str | None, password: str) -> Verified:
        """Verify `password` against `stored_hash` (None: an unknown account, checked against the
        dummy hash so it costs the same, and always refused)."""
        try:
            self._argon.verify(stored_hash or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verified(False)
        if stored_hash is None:
            return Verified(False)
        if self._argon.check_needs_rehash(stored_hash):
            return Verified(True, self._argon.hash(password))
        return Verified(True)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hash_sync, password)

    async def verify(self, stored_hash: str | None, password: str) -> Verified:
        return await asyncio.to_thread(self.verify_sync, stored_hash, password)
