"""Group commit and call coalescing: one primitive for both.

`Batcher.submit(item)` queues an item and returns when the batch that carried it has been
flushed. The loop never waits to fill a batch: when idle, the first item flushes at once; while a
flush runs, whatever arrives queues up and goes out together as soon as that flush returns. Under
load batches grow by themselves, and latency stays one flush at idle.

Owners use it for durable acknowledgement (flush = one Postgres transaction); replicas use it to
coalesce concurrent requests for one shard into one actor call (flush = one remote call).
Pure asyncio: no Ray, no I/O of its own.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[list[T]], Awaitable[Sequence[R] | None]]


class Batcher(Generic[T, R]):
    """Runs `flush(items)` for whatever arrived while the previous flush ran.

    Contract: each item's future gets the result at its index in the sequence `flush` returns
    (None results when flush returns None), or the exception `flush` raised. Flushes never overlap,
    and items are flushed in submission order. `max_batch=None` takes everything queued, which an
    owner needs when a flush persists a snapshot of state that every queued item already changed.
    """

    def __init__(self, flush: Flush, *, max_batch: int | None = None, on_flushed: Callable[[int, float], None] | None = None):
        self._flush = flush
        self._max_batch = max_batch
        self._on_flushed = on_flushed
        self._items: list[T] = []
        self._futures: list[asyncio.Future] = []
        self._task: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        return len(self._items)

    @property
    def busy(self) -> bool:
        return self._task is not None

    def submit_nowait(self, item: T) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._futures.append(fut)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return fut

    async def submit(self, item: T) -> R:
        return await self.submit_nowait(item)

    def fail_queued(self, exc: BaseException) -> int:
        """Fail every item not yet handed to a flush (an owner does this when its state is reloaded)."""
        futures, self._items, self._futures = self._futures, [], []
        for fut in futures:
            if not fut.done():
                fut.set_exception(exc)
        return len(futures)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._items:
                n = len(self._items) if self._max_batch is None else min(self._max_batch, len(self._items))
                items, self._items = self._items[:n], self._items[n:]
                futures, self._futures = self._futures[:n], self._futures[n:]
                started = loop.time()
                try:
                    results = await self._flush(items)
                except Exception as exc:  # handed to every caller of this batch
                    for fut in futures:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                if self._on_flushed is not None:
                    self._on_flushed(n, loop.time() - started)
                if results is None:
                    for fut in futures:
                        if not fut.done():
                            fut.set_result(None)
                else:
                    if len(results) != n:
                        err = RuntimeError(f"flush returned {len(results)} results for {n} items")
                        for fut in futures:
                            if not fut.done():
                                fut.set_exception(err)
                        continue
                    for fut, res in zip(futures, results):
                        if not fut.done():
                            fut.set_result(res)
        finally:
            self._task = None
