"""Committed events to topic frames (realtime/fanout.py), with a fake pool (no servers)."""
import json

import pytest

from realtime.fanout import ORDER_STREAM, EventFanout
from realtime.hub import Hub

pytestmark = pytest.mark.unit


class FakePool:
    """The orders table as `live_views.order_states` reads it; counts round trips."""

    def __init__(self, orders: dict[str, dict]):
        self.orders, self.queries = orders, []

    async def fetch(self, sql: str, numbers: list[str]):
        self.queries.append(list(numbers))
        return [self.orders[n] for n in numbers if n in self.orders]


def order_row(number: str, status: str, version: int) -> dict:
    return {"number": number, "status": status, "total_minor": 1000, "currency": "USD", "carrier": None,
            "tracking_number": None, "version": version, "updated_at": 1.0}


def order_event(event_id: int, kind: str, number: str, status: str) -> tuple[str, dict]:
    payload = {"number": number, "status": status, "total_minor": 1000, "currency": "USD", "occurred_at": 1.0}
    return f"{event_id}-0", {"id": str(event_id), "type": kind, "payload": json.dumps(payload)}


class Socket:
    async def send(self, frame):  # pragma: no cover - frames are read from the outbox
        pass


async def test_a_batch_of_order_events_reads_the_watched_orders_once_each_in_one_query():
    hub = Hub(fanout="queued")
    pool = FakePool({"ORD-1": order_row("ORD-1", "shipped", 4), "ORD-2": order_row("ORD-2", "paid", 2),
                     "ORD-3": order_row("ORD-3", "paid", 2)})
    watcher = hub.connect(Socket())
    await hub.subscribe(watcher, {"order:ORD-1", "order:ORD-2"}, {})
    batch = [order_event(10, "OrderPaid", "ORD-1", "paid"), order_event(11, "OrderPaid", "ORD-2", "paid"),
             order_event(12, "OrderShipped", "ORD-1", "shipped"), order_event(13, "OrderPaid", "ORD-3", "paid")]
    await EventFanout(hub, pool).dispatch(ORDER_STREAM, batch)
    assert pool.queries == [["ORD-1", "ORD-2"]]  # one round trip; ORD-3 is watched by nobody
    frames = {json.loads(f)["topic"]: json.loads(f) for f in watcher.pending.values()}
    assert frames["order:ORD-1"]["seq"] == 4 and frames["order:ORD-1"]["data"]["status"] == "shipped"
    assert frames["order:ORD-2"]["seq"] == 2
    assert [seq for seq, _ in hub.recent["admin"]] == [10, 11, 12, 13]  # the admin feed still gets every event
