"""The hub's frozen heap (realtime/heap.py): what a freeze keeps, what a reclaim frees, and when the
loop does which. The process's own GC, no servers."""
from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from realtime import heap

pytestmark = pytest.mark.unit


class Node:
    pass


def test_a_freeze_keeps_cyclic_garbage_out_of_full_collections_until_a_reclaiming_tick():
    gc.disable()
    try:
        node = Node()
        node.me = node  # a cycle: only the cyclic GC frees it
        alive = weakref.ref(node)
        heap.freeze_tick()
        del node
        gc.collect()
        assert alive() is not None  # frozen: even a full collection does not look at it
        heap.freeze_tick(reclaim=True)
        assert alive() is None
        assert gc.get_freeze_count() > 0  # and the survivors are frozen again
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_frozen_object_is_still_freed_by_reference_counting():
    gc.disable()
    try:
        node = Node()
        alive = weakref.ref(node)
        heap.freeze_tick()
        frozen = gc.get_freeze_count()
        del node
        assert alive() is None and gc.get_freeze_count() < frozen
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.parametrize(("reclaim_every_s", "expected"), [
    (3.5, [False] * 4 + [True] + [False] * 4 + [True]),
    (0, [False] * 10),  # never
])
async def test_the_loop_freezes_at_every_tick_and_reclaims_once_per_interval(monkeypatch, reclaim_every_s, expected):
    now, ticks = [0.0], []

    def tick(reclaim: bool = False) -> None:
        ticks.append(reclaim)
        now[0] += 1.0  # each tick one second after the last
        if len(ticks) == 10:
            raise asyncio.CancelledError
    monkeypatch.setattr(heap, "freeze_tick", tick)
    with pytest.raises(asyncio.CancelledError):
        await heap.freeze_survivors(0, reclaim_every_s, clock=lambda: now[0])
    assert ticks == expected
