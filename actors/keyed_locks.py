"""Per-key asyncio locks that exist only while someone holds or waits for them.

Owners serialise commands per aggregate (a cart, an order's cart) without awaiting between reading
and writing it unguarded (STYLE.md habit 17). A plain dict of locks grows with every key ever seen,
and dropping an entry while a caller holds it lets the next caller make a second lock for the same
key; counting holders and waiters and dropping the entry when the count reaches zero does neither.
Pure asyncio.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyedLocks:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        """Keys currently held or waited for."""
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._entries[key]
