"""Load shedding: past a per-replica in-flight limit, the hot path answers 429 with Retry-After at
once instead of queueing work it cannot finish in time. Nothing half-done: a shed request never
reached an owner."""
from __future__ import annotations

import contextlib

from actors.domain.errors import Overloaded


class InFlightLimiter:
    def __init__(self, limit: int, retry_after_s: int = 1):
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.shed = 0

    @property
    def free(self) -> int:
        return max(0, self.limit - self.in_flight)

    @contextlib.asynccontextmanager
    async def slot(self, admitted: bool = False):
        """A slot for one request; `admitted` (a waiting-room ticket whose turn came) skips the limit."""
        if not admitted and self.in_flight >= self.limit:
            self.shed += 1
            raise Overloaded("Too many shoppers right now; retry shortly.", retry_after=self.retry_after_s)
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
