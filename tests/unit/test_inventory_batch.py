"""How one group commit's events become rows: movements per line, outbox rows, and only the last
stock level per SKU (intermediate levels inside one commit were never durable)."""
import pytest

from actors.domain.inventory import Ledger
from actors.inventory_shard import to_batch

pytestmark = pytest.mark.unit


def test_a_batch_keeps_one_level_event_per_sku_and_a_movement_per_line():
    ledger = Ledger()
    ledger.upsert_sku("A", 10, now=0.0)
    ledger.drain_dirty()
    events = []
    for i in range(3):
        events += ledger.reserve(f"r{i}", "cart:1", [("A", 2)], 60, 1.0).events
    events += ledger.commit("r0", 2.0).events
    batch = to_batch(ledger.drain_dirty(), events)
    levels = [o for o in batch.outbox if o.type == "StockLevelChanged"]
    assert len(levels) == 1 and levels[0].payload["available"] == 4 and levels[0].payload["on_hand"] == 8
    assert [(m.kind, m.delta_on_hand, m.delta_reserved) for m in batch.movements] == [
        ("reserve", 0, 2), ("reserve", 0, 2), ("reserve", 0, 2), ("commit", -2, -2)]
    assert [r["sku"] for r in batch.stock_rows] == ["A"] and len(batch.reservation_rows) == 3
    assert len({o.event_id for o in batch.outbox}) == len(batch.outbox)  # every event its own id
