"""The hub's heap: keep the cyclic GC's full passes off a hub holding thousands of sockets, and
show what the GC does.

Why: a hub holding 10,000 sockets tracks ~1.1 million objects (~110 per connection: the
`websockets` connection, its tasks and coroutines, its handshake's headers). CPython 3.11 runs a
full collection whenever the long-lived objects have grown by a quarter since the last one, which
happens during a connect storm and again and again under churn, and each pass over that heap
stops the hub for 0.2-0.5 s (README, "The realtime hub"): every socket's next frame waits.

`freeze_survivors` moves what has survived the young collections into the permanent generation
(`gc.freeze()`) every `every_s`, so a full pass scans only what arrived since. Frozen objects are
still freed by reference counting; what freezing keeps is frozen *cyclic* garbage, and
`realtime.server.HubConnection` breaks the one cycle a closed connection had, so closing sockets
leaves nothing behind (tests/integration/test_hub.py). Anything else of that kind is reclaimed by
an unfreeze and a full collection every `reclaim_every_s` (a full pause, but once in that
interval instead of at every quarter of growth).
"""
from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram, ProcessCollector

GC_PAUSE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def freeze_tick(reclaim: bool = False) -> None:
    """Young generations collected, then everything still tracked frozen; with `reclaim`, the frozen
    heap is first put back and collected in full (the pause this module otherwise avoids)."""
    if reclaim:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)  # young garbage is not frozen with the survivors
    gc.freeze()


async def freeze_survivors(every_s: float, reclaim_every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Runs `freeze_tick` every `every_s` (and a reclaiming one every `reclaim_every_s`; 0: never)."""
    reclaimed = clock()
    while True:
        await asyncio.sleep(every_s)
        reclaim = bool(reclaim_every_s) and clock() - reclaimed >= reclaim_every_s
        freeze_tick(reclaim)
        if reclaim:
            reclaimed = clock()


class GcPauses:
    """Times every cyclic GC pass of this process (`gc.callbacks`) and hands `on_pause` its
    generation and how long it stopped the process, in seconds."""

    def __init__(self, on_pause: Callable[[int, float], None]):
        self._on_pause = on_pause
        self._started: float | None = None
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self._on_pause(info["generation"], time.perf_counter() - self._started)
            self._started = None

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)


class HubMetrics:
    """The hub process's Prometheus metrics, its own registry (several hubs may share a test
    process), served by the hub at `GET /metrics`: sockets held, each GC pass's pause by
    generation, the frozen heap, and the process's CPU, memory and descriptors."""

    def __init__(self, connected: Callable[[], int]):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        Gauge("surge_hub_clients", "Websocket clients connected to this hub process.",
              registry=self.registry).set_function(connected)
        Gauge("surge_hub_gc_frozen_objects", "Objects in the GC's permanent generation (gc.freeze).",
              registry=self.registry).set_function(gc.get_freeze_count)
        self.gc_pause = Histogram("surge_hub_gc_pause_seconds", "Time the hub stood still in each cyclic GC pass.",
                                  ["generation"], buckets=GC_PAUSE_BUCKETS, registry=self.registry)
        self._pauses = GcPauses(lambda generation, s: self.gc_pause.labels(str(generation)).observe(s))

    def close(self) -> None:
        self._pauses.close()
