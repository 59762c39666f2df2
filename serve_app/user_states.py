"""Who is still allowed in: each user's status and role, cached briefly per replica.

A valid access token is not enough: a deactivated user (or a demoted admin) is refused on the next
request. Asking Postgres on every request would cost a round trip, so each replica keeps what it
read for `ttl_s` (5 s): a deactivation or role change takes effect on every replica within 5 s,
and at once on the replica that made it (`forget`)."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import asyncpg

from storage import user_store


@dataclass(frozen=True)
class UserState:
    email: str
    role: str
    status: str


class UserStates:
    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 5.0, max_entries: int = 50_000):
        self.pool = pool
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._cache: dict[uuid.UUID, tuple[float, UserState | None]] = {}

    async def get(self, user_id: uuid.UUID, fresh: bool = False) -> UserState | None:
        now = time.monotonic()
        hit = self._cache.get(user_id)
        if hit is not None and not fresh and hit[0] > now:
            return hit[1]
        row = await user_store.auth_state(self.pool, user_id)
        state = UserState(row["email"], row["role"], row["status"]) if row else None
        if len(self._cache) >= self.max_entries:
            self._cache.clear()  # crude but bounded; entries live 5 s anyway
        self._cache[user_id] = (now + self.ttl_s, state)
        return state

    def forget(self, user_id: uuid.UUID) -> None:
        self._cache.pop(user_id, None)
