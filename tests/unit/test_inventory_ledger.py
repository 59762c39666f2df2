import json
import pickle
from collections import Counter
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.domain.errors import (
    STATUS,
    ErrorCode,
    InvalidQuantity,
    OutOfStock,
    ReservationConflict,
    SurgeError,
    UnknownSku,
    ValidationFailed,
    error_for,
)
from actors.domain.events import (
    BackInStock,
    LowStock,
    ReservationExpired,
    SoldOut,
    StockAdjusted,
    StockCommitted,
    StockLevelChanged,
    StockReleased,
    StockReserved,
    event_payload,
    event_type,
)
from actors.domain.inventory import Ledger, ReservationState

pytestmark = pytest.mark.unit

T0 = 1_000.0


def make_ledger(*skus: tuple) -> Ledger:
    """skus: (sku, on_hand[, low_stock_threshold[, per_customer_cap]])"""
    ledger = Ledger()
    for spec in skus:
        ledger.upsert_sku(*spec, now=T0)
    ledger.drain_dirty()
    return ledger


def available(ledger: Ledger, sku: str) -> int:
    return ledger.stock(sku).available


def types(events) -> list[str]:
    return [event_type(e) for e in events]


# reserve


def test_reserve_holds_stock_until_the_ttl_and_says_so():
    ledger = make_ledger(("A", 5))
    result = ledger.reserve("r1", "cart:1", [("A", 2)], ttl_s=30, now=T0)
    assert result.ok and result.state is ReservationState.HELD and result.expires_at == T0 + 30
    assert (ledger.stock("A").reserved, available(ledger, "A")) == (2, 3)
    assert types(result.events) == ["StockReserved", "StockLevelChanged"]
    assert result.events[1] == StockLevelChanged("A", 5, 2, 3, ledger.stock("A").version, T0)


def test_reserve_is_idempotent_for_the_same_reservation_id():
    ledger = make_ledger(("A", 5), ("B", 5))
    first = ledger.reserve("r1", "cart:1", [("A", 2), ("B", 1)], 30, T0, customer_id="c1")
    ledger.drain_dirty()
    # a retry, with the lines in another order and a later clock, is the same request
    again = ledger.reserve("r1", "cart:1", [("B", 1), ("A", 2)], 60, T0 + 5, customer_id="c1")
    assert again.ok and again.replayed and again.expires_at == first.expires_at
    assert again.events == [] and not ledger.drain_dirty()
    assert ledger.stock("A").reserved == 2 and ledger.customer_units("c1", "A") == 2


def test_a_replay_reports_where_the_reservation_is_now():
    ledger = make_ledger(("A", 5))
    ledger.reserve("r1", "order:1", [("A", 1)], 30, T0)
    ledger.commit("r1", T0 + 1)
    again = ledger.reserve("r1", "order:1", [("A", 1)], 30, T0 + 2)
    assert again.ok and again.replayed and again.state is ReservationState.COMMITTED
    assert ledger.stock("A").sold == 1


def test_conflicting_reuse_of_a_reservation_id_is_refused():
    ledger = make_ledger(("A", 5), ("B", 5))
    ledger.reserve("r1", "cart:1", [("A", 1)], 30, T0, customer_id="c1")
    for owner, lines, customer in [
        ("cart:1", [("A", 2)], "c1"),
        ("cart:1", [("B", 1)], "c1"),
        ("cart:2", [("A", 1)], "c1"),
        ("cart:1", [("A", 1)], "c2"),
        ("cart:1", [("A", 1)], None),
    ]:
        with pytest.raises(ReservationConflict) as caught:
            ledger.reserve("r1", owner, lines, 30, T0, customer_id=customer)
        assert caught.value.status == 409 and caught.value.context["reservation_id"] == "r1"
    ledger.release("r1", T0)  # still taken after it ends: ids are never reused for other content
    with pytest.raises(ReservationConflict):
        ledger.reserve("r1", "cart:1", [("A", 3)], 30, T0)
    assert ledger.check_invariants() == []


def test_reserve_is_all_or_nothing_over_its_lines_and_reports_what_is_available():
    ledger = make_ledger(("A", 5), ("B", 1))
    result = ledger.reserve("r1", "order:9", [("A", 2), ("B", 2)], 30, T0)
    assert not result.ok and result.code is ErrorCode.OUT_OF_STOCK and result.state is None
    assert dict(result.available) == {"A": 5, "B": 1}
    assert result.events == [] and not ledger.drain_dirty()
    assert ledger.stock("A").reserved == 0 and ledger.reservation("r1") is None


def test_a_refused_reservation_id_is_not_remembered_and_may_succeed_once_stock_is_back():
    ledger = make_ledger(("A", 1))
    ledger.reserve("r1", "cart:1", [("A", 1)], 30, T0)
    assert not ledger.reserve("r2", "cart:2", [("A", 1)], 30, T0).ok
    ledger.release("r1", T0 + 1)
    retry = ledger.reserve("r2", "cart:2", [("A", 1)], 30, T0 + 2)
    assert retry.ok and not retry.replayed


def test_duplicate_skus_in_lines_are_summed():
    ledger = make_ledger(("A", 5))
    result = ledger.reserve("r1", "cart:1", [("A", 1), ("A", 2)], 30, T0)
    assert result.ok and ledger.reservation("r1").lines == (("A", 3),)
    assert ledger.reserve("r1", "cart:1", {"A": 3}, 30, T0).replayed


def test_two_reservations_racing_for_the_last_unit_exactly_one_wins():
    ledger = make_ledger(("A", 1))
    outcomes = [ledger.reserve(rid, f"cart:{rid}", [("A", 1)], 30, T0) for rid in ("r1", "r2")]
    assert [o.ok for o in outcomes] == [True, False]
    assert outcomes[1].code is ErrorCode.OUT_OF_STOCK and outcomes[1].available == {"A": 0}
    assert available(ledger, "A") == 0 and ledger.check_invariants() == []


def test_a_flash_sale_crowd_buys_exactly_the_stock_and_sold_out_fires_once():
    ledger = make_ledger(("HOT", 50, 10))
    events = []
    wins = 0
    for i in range(500):
        result = ledger.reserve(f"r{i}", f"cart:{i}", [("HOT", 1)], 30, T0 + i * 0.001)
        events += result.events
        if result.ok:
            wins += 1
            events += ledger.commit(f"r{i}", T0 + i * 0.001).events
    stock = ledger.stock("HOT")
    assert wins == 50 and (stock.sold, stock.on_hand, stock.reserved, stock.received) == (50, 0, 0, 50)
    counts = Counter(types(events))
    assert counts["SoldOut"] == 1 and counts["LowStock"] == 1 and counts["StockCommitted"] == 50


# per-customer caps


def test_per_customer_cap_holds_across_carts_and_orders():
    ledger = make_ledger(("LIMITED", 100, 0, 2))
    assert ledger.reserve("cart-hold", "cart:1", [("LIMITED", 1)], 30, T0, customer_id="alice").ok
    assert ledger.reserve("order-1", "order:1", [("LIMITED", 1)], 30, T0, customer_id="alice").ok
    ledger.commit("order-1", T0)
    refused = ledger.reserve("cart2-hold", "cart:2", [("LIMITED", 1)], 30, T0, customer_id="alice")
    assert not refused.ok and refused.code is ErrorCode.CAP_EXCEEDED
    assert refused.cap_remaining == {"LIMITED": 0} and refused.available == {"LIMITED": 98}
    # another customer is not affected
    assert ledger.reserve("bob-hold", "cart:3", [("LIMITED", 2)], 30, T0, customer_id="bob").ok


def test_releasing_or_expiring_a_hold_gives_the_customer_their_allowance_back_but_a_sale_does_not():
    ledger = make_ledger(("LIMITED", 100, 0, 1))
    ledger.reserve("h1", "cart:1", [("LIMITED", 1)], 30, T0, customer_id="alice")
    ledger.release("h1", T0)
    ledger.reserve("h2", "cart:1", [("LIMITED", 1)], 30, T0, customer_id="alice")
    ledger.expire_due(T0 + 30)
    assert ledger.customer_units("alice", "LIMITED") == 0
    ledger.reserve("h3", "cart:1", [("LIMITED", 1)], 30, T0 + 31, customer_id="alice")
    ledger.commit("h3", T0 + 32)
    assert not ledger.reserve("h4", "cart:1", [("LIMITED", 1)], 30, T0 + 33, customer_id="alice").ok


def test_a_request_over_the_cap_is_refused_whole_even_when_stock_is_plenty():
    ledger = make_ledger(("LIMITED", 100, 0, 2), ("FREE", 100))
    refused = ledger.reserve("r", "cart:1", [("FREE", 5), ("LIMITED", 3)], 30, T0, customer_id="alice")
    assert not refused.ok and refused.code is ErrorCode.CAP_EXCEEDED
    assert refused.cap_remaining == {"LIMITED": 2} and ledger.stock("FREE").reserved == 0


def test_out_of_stock_wins_over_cap_when_both_refuse():
    ledger = make_ledger(("LIMITED", 1, 0, 1))
    result = ledger.reserve("r", "cart:1", [("LIMITED", 2)], 30, T0, customer_id="alice")
    assert result.code is ErrorCode.OUT_OF_STOCK and result.cap_remaining == {"LIMITED": 1}


def test_caps_apply_only_to_reservations_that_name_a_customer():
    # the edge must require a signed-in customer for capped products; the ledger cannot guess one
    ledger = make_ledger(("LIMITED", 10, 0, 1))
    assert ledger.reserve("anon", "cart:x", [("LIMITED", 3)], 30, T0).ok


# release, commit, expiry


def test_release_returns_stock_and_is_idempotent():
    ledger = make_ledger(("A", 2))
    ledger.reserve("r1", "cart:1", [("A", 2)], 30, T0)
    first = ledger.release("r1", T0 + 1)
    assert first.ok and first.state is ReservationState.RELEASED
    assert types(first.events) == ["StockReleased", "StockLevelChanged", "BackInStock"]
    again = ledger.release("r1", T0 + 2)
    assert again.ok and again.state is ReservationState.RELEASED and again.events == []
    assert available(ledger, "A") == 2 and ledger.check_invariants() == []


def test_release_of_an_unknown_id_is_a_harmless_no_op():
    # an all-or-nothing caller releases on every shard, including the one that refused
    ledger = make_ledger(("A", 2))
    result = ledger.release("never-held", T0)
    assert result.ok and result.state is None and result.events == [] and not ledger.drain_dirty()


def test_release_of_a_committed_reservation_is_refused():
    ledger = make_ledger(("A", 2))
    ledger.reserve("r1", "order:1", [("A", 1)], 30, T0)
    ledger.commit("r1", T0)
    result = ledger.release("r1", T0)
    assert not result.ok and result.code is ErrorCode.INVALID_TRANSITION and result.state is ReservationState.COMMITTED
    assert ledger.stock("A").sold == 1


def test_commit_moves_units_from_reserved_to_sold_and_keeps_the_books_balanced():
    ledger = make_ledger(("A", 5))
    ledger.reserve("r1", "order:1", [("A", 2)], 30, T0)
    result = ledger.commit("r1", T0 + 1)
    assert result.ok and result.state is ReservationState.COMMITTED
    assert types(result.events) == ["StockCommitted", "StockLevelChanged"]
    stock = ledger.stock("A")
    assert (stock.on_hand, stock.reserved, stock.available, stock.sold, stock.received) == (3, 0, 3, 2, 5)


def test_commit_is_idempotent():
    ledger = make_ledger(("A", 5))
    ledger.reserve("r1", "order:1", [("A", 2)], 30, T0)
    ledger.commit("r1", T0)
    ledger.drain_dirty()
    again = ledger.commit("r1", T0 + 100)
    assert again.ok and again.events == [] and not ledger.drain_dirty() and ledger.stock("A").sold == 2


def test_commit_of_a_released_or_expired_reservation_is_refused():
    ledger = make_ledger(("A", 5))
    ledger.reserve("released", "order:1", [("A", 1)], 30, T0)
    ledger.release("released", T0)
    ledger.reserve("expired", "order:2", [("A", 1)], 30, T0)
    ledger.expire_due(T0 + 30)
    for rid, state in [("released", ReservationState.RELEASED), ("expired", ReservationState.EXPIRED)]:
        result = ledger.commit(rid, T0 + 31)
        assert not result.ok and result.code is ErrorCode.INVALID_TRANSITION and result.state is state
    assert ledger.stock("A").sold == 0 and available(ledger, "A") == 5


def test_commit_after_the_hold_ran_out_expires_it_even_before_the_sweep_runs():
    ledger = make_ledger(("A", 1))
    ledger.reserve("r1", "order:1", [("A", 1)], 30, T0)
    result = ledger.commit("r1", T0 + 30)
    assert not result.ok and result.state is ReservationState.EXPIRED
    assert types(result.events) == ["ReservationExpired", "StockLevelChanged", "BackInStock"]
    assert ledger.expire_due(T0 + 60).expired == [] and available(ledger, "A") == 1


def test_commit_of_an_unknown_reservation_is_refused_with_not_found():
    result = make_ledger(("A", 1)).commit("nope", T0)
    assert not result.ok and result.code is ErrorCode.RESERVATION_NOT_FOUND and result.state is None


def test_expiry_returns_stock_exactly_once():
    ledger = make_ledger(("A", 3))
    ledger.reserve("r1", "cart:1", [("A", 2)], 10, T0)
    ledger.reserve("r2", "cart:2", [("A", 1)], 20, T0)
    assert ledger.expire_due(T0 + 9.999).expired == []
    first = ledger.expire_due(T0 + 10)
    assert first.expired == ["r1"] and isinstance(first.events[0], ReservationExpired)
    assert ledger.expire_due(T0 + 10).expired == []
    assert ledger.release("r1", T0 + 11).events == []  # releasing it later gives nothing back twice
    assert ledger.reserve("r1", "cart:1", [("A", 2)], 10, T0 + 12).state is ReservationState.EXPIRED
    assert ledger.expire_due(T0 + 20).expired == ["r2"]
    assert available(ledger, "A") == 3 and ledger.stock("A").reserved == 0
    assert ledger.check_invariants() == []


def test_expire_due_ignores_holds_that_were_released_or_committed():
    ledger = make_ledger(("A", 3))
    for rid in ("r1", "r2", "r3"):
        ledger.reserve(rid, f"cart:{rid}", [("A", 1)], 10, T0)
    ledger.release("r1", T0)
    ledger.commit("r2", T0)
    assert ledger.expire_due(T0 + 10).expired == ["r3"]
    assert (ledger.stock("A").sold, available(ledger, "A")) == (1, 2)


def test_next_expiry_is_the_earliest_hold_still_held():
    ledger = make_ledger(("A", 3))
    assert ledger.next_expiry() is None
    ledger.reserve("short", "cart:1", [("A", 1)], 5, T0)
    ledger.reserve("long", "cart:2", [("A", 1)], 50, T0)
    assert ledger.next_expiry() == T0 + 5
    ledger.release("short", T0)
    assert ledger.next_expiry() == T0 + 50


# adjustments and settings


def test_restock_adds_to_received_and_brings_a_sold_out_sku_back():
    ledger = make_ledger(("A", 1))
    ledger.reserve("r1", "order:1", [("A", 1)], 30, T0)
    ledger.commit("r1", T0)
    result = ledger.adjust("A", 10, "delivery 42", T0 + 1)
    assert result.ok and result.level.available == 10 and result.level.received == 11
    assert types(result.events) == ["StockAdjusted", "StockLevelChanged", "BackInStock"]
    assert result.events[0] == StockAdjusted("A", 10, "delivery 42", 10, T0 + 1)


def test_write_off_never_goes_below_reserved():
    ledger = make_ledger(("A", 5))
    ledger.reserve("r1", "cart:1", [("A", 3)], 30, T0)
    refused = ledger.adjust("A", -3, "damaged", T0)
    assert not refused.ok and refused.code is ErrorCode.OUT_OF_STOCK and refused.level.available == 2
    assert refused.events == [] and ledger.stock("A").on_hand == 5
    done = ledger.adjust("A", -2, "damaged", T0)
    assert done.ok and (done.level.on_hand, done.level.received, done.level.available) == (3, 3, 0)
    assert "SoldOut" in types(done.events)


@pytest.mark.parametrize("delta", [0, 1.0, True, "3", None])
def test_adjust_rejects_deltas_that_are_not_non_zero_whole_numbers(delta):
    ledger = make_ledger(("A", 5))
    with pytest.raises(InvalidQuantity):
        ledger.adjust("A", delta, "count", T0)


def test_adjust_of_an_unknown_sku_raises():
    with pytest.raises(UnknownSku):
        make_ledger(("A", 5)).adjust("B", 1, "restock", T0)


def test_sold_out_and_back_in_stock_fire_on_the_zero_crossings_only():
    ledger = make_ledger(("A", 2))
    step1 = ledger.reserve("r1", "cart:1", [("A", 1)], 30, T0).events
    step2 = ledger.reserve("r2", "cart:2", [("A", 1)], 30, T0).events
    step3 = ledger.release("r1", T0).events
    step4 = ledger.release("r2", T0).events
    assert [sum(isinstance(e, SoldOut) for e in s) for s in (step1, step2, step3, step4)] == [0, 1, 0, 0]
    assert [sum(isinstance(e, BackInStock) for e in s) for s in (step1, step2, step3, step4)] == [0, 0, 1, 0]


def test_low_stock_fires_once_when_crossing_the_threshold_downward():
    ledger = make_ledger(("A", 10, 3))
    fired = []
    for i in range(9):
        fired.append(any(isinstance(e, LowStock) for e in ledger.reserve(f"r{i}", "cart", [("A", 1)], 30, T0).events))
    assert fired == [False, False, False, False, False, False, True, False, False]  # at 3 left
    for rid in ("r0", "r1", "r2"):
        ledger.release(rid, T0)  # back above the threshold: 4 left
    assert any(isinstance(e, LowStock) for e in ledger.reserve("again", "cart", [("A", 2)], 30, T0).events)


def test_low_stock_lists_skus_at_or_below_their_threshold_fewest_first():
    ledger = make_ledger(("A", 10, 3), ("B", 2, 3), ("C", 0, 0), ("D", 5, 0))
    assert [lv.sku for lv in ledger.low_stock()] == ["C", "B"]


def test_upsert_creates_then_updates_and_is_idempotent():
    ledger = Ledger()
    created = ledger.upsert_sku("A", 5, 1, 2, now=T0)
    assert created.ok and created.created and types(created.events) == ["StockAdjusted", "StockLevelChanged"]
    same = ledger.upsert_sku("A", 5, 1, 2, now=T0 + 1)
    assert same.ok and not same.created and same.events == [] and same.level.version == 1
    ledger.reserve("r1", "cart:1", [("A", 4)], 30, T0)
    refused = ledger.upsert_sku("A", 3, 1, 2, now=T0)
    assert not refused.ok and refused.code is ErrorCode.OUT_OF_STOCK
    updated = ledger.upsert_sku("A", 8, 2, None, now=T0)
    assert updated.ok and (updated.level.received, updated.level.available, updated.level.per_customer_cap) == (8, 4, None)
    assert ledger.check_invariants() == []


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda l: l.reserve("r", "cart", [("NOPE", 1)], 30, T0), UnknownSku),
        (lambda l: l.reserve("r", "cart", [("A", 1), ("NOPE", 1)], 30, T0), UnknownSku),
        (lambda l: l.reserve("r", "cart", [("A", 0)], 30, T0), InvalidQuantity),
        (lambda l: l.reserve("r", "cart", [("A", -1)], 30, T0), InvalidQuantity),
        (lambda l: l.reserve("r", "cart", [("A", 1.5)], 30, T0), InvalidQuantity),
        (lambda l: l.reserve("r", "cart", [("A", True)], 30, T0), InvalidQuantity),
        (lambda l: l.reserve("r", "cart", [], 30, T0), ValidationFailed),
        (lambda l: l.reserve("r", "cart", ["A"], 30, T0), ValidationFailed),
        (lambda l: l.reserve("r", "cart", [("", 1)], 30, T0), ValidationFailed),
        (lambda l: l.reserve("", "cart", [("A", 1)], 30, T0), ValidationFailed),
        (lambda l: l.reserve("r", "", [("A", 1)], 30, T0), ValidationFailed),
        (lambda l: l.reserve("r", "cart", [("A", 1)], 0, T0), ValidationFailed),
        (lambda l: l.reserve("r", "cart", [("A", 1)], float("nan"), T0), ValidationFailed),
        (lambda l: l.upsert_sku("B", -1, now=T0), InvalidQuantity),
        (lambda l: l.upsert_sku("B", 1, per_customer_cap=0, now=T0), InvalidQuantity),
    ],
)
def test_invalid_input_raises_a_surge_error_before_anything_changes(call, error):
    ledger = make_ledger(("A", 5))
    before = ledger.rows()
    with pytest.raises(error) as caught:
        call(ledger)
    assert isinstance(caught.value, SurgeError) and caught.value.status in (404, 422)
    assert ledger.rows() == before and not ledger.drain_dirty()


def test_levels_are_snapshots_and_skip_unknown_skus():
    ledger = make_ledger(("A", 5), ("B", 1))
    levels = ledger.levels(["A", "NOPE"])
    assert list(levels) == ["A"] and levels["A"].available == 5
    ledger.reserve("r1", "cart:1", [("A", 1)], 30, T0)
    assert levels["A"].available == 5 and ledger.levels()["A"].available == 4
    assert set(ledger.levels()) == {"A", "B"}


# persistence


def test_drain_dirty_returns_exactly_the_changed_rows_once():
    ledger = make_ledger(("A", 5), ("B", 5), ("C", 5))
    ledger.reserve("r1", "cart:1", [("A", 1), ("B", 2)], 30, T0, customer_id="c1")
    ledger.reserve("r2", "cart:2", [("C", 9)], 30, T0)  # refused: changes nothing
    dirty = ledger.drain_dirty()
    assert [r["sku"] for r in dirty.stock_rows] == ["A", "B"]
    assert [(r["reservation_id"], r["sku"], r["quantity"], r["state"]) for r in dirty.reservation_rows] == [
        ("r1", "A", 1, "held"),
        ("r1", "B", 2, "held"),
    ]
    assert not ledger.drain_dirty()
    ledger.commit("r1", T0 + 1)
    dirty = ledger.drain_dirty()
    assert {r["state"] for r in dirty.reservation_rows} == {"committed"}
    assert [(r["sku"], r["sold"]) for r in dirty.stock_rows] == [("A", 1), ("B", 2)]
    ledger.reserve("r3", "cart:3", [("C", 1)], 30, T0)
    ledger.drain_dirty()
    ledger.expire_due(T0 + 30)  # the sweep's changes are rows to write too
    dirty = ledger.drain_dirty()
    assert [(r["sku"], r["reserved"]) for r in dirty.stock_rows] == [("C", 0)]
    assert [(r["reservation_id"], r["state"]) for r in dirty.reservation_rows] == [("r3", "expired")]


def test_dirty_rows_are_snapshots_not_live_views():
    ledger = make_ledger(("A", 5))
    ledger.reserve("r1", "cart:1", [("A", 1)], 30, T0)
    dirty = ledger.drain_dirty()
    ledger.release("r1", T0)
    assert dirty.stock_rows[0]["reserved"] == 1 and dirty.reservation_rows[0]["state"] == "held"


class FakeTables:
    """Upserts drained rows the way the store would, keyed by primary key."""

    def __init__(self):
        self.stock: dict = {}
        self.lines: dict = {}

    def write(self, dirty):
        for row in dirty.stock_rows:
            self.stock[row["sku"]] = dict(row)
        for row in dirty.reservation_rows:
            self.lines[(row["reservation_id"], row["sku"])] = dict(row)

    def load(self) -> Ledger:
        return Ledger.from_rows(list(self.stock.values()), list(self.lines.values()))


def _sorted_rows(rows):
    return (
        sorted(rows.stock_rows, key=lambda r: r["sku"]),
        sorted(rows.reservation_rows, key=lambda r: (r["reservation_id"], r["sku"])),
    )


def test_settled_reservations_a_restart_would_not_load_are_forgotten_and_their_ids_start_afresh():
    ledger = make_ledger(("A", 10, 0, 5))
    ledger.reserve("held", "cart:1", [("A", 1)], 600, T0)
    ledger.reserve("released", "cart:2", [("A", 1)], 600, T0)
    ledger.reserve("expired", "cart:3", [("A", 1)], 5, T0)
    ledger.reserve("guest-sale", "order:4", [("A", 1)], 600, T0)
    ledger.reserve("customer-sale", "order:5", [("A", 2)], 600, T0, customer_id="c")
    ledger.release("released", T0 + 1)
    ledger.commit("guest-sale", T0 + 2)
    ledger.commit("customer-sale", T0 + 3)
    ledger.expire_due(T0 + 10)
    assert ledger.forget_settled(T0 + 100) == []  # their final rows are not written yet
    ledger.drain_dirty()
    assert ledger.forget_settled(T0 + 2) == ["released"]  # only what settled before `before`
    assert ledger.forget_settled(T0 + 100) == ["guest-sale", "expired"]  # in the order they settled
    assert ledger.reservation("held").state is ReservationState.HELD
    assert ledger.reservation("customer-sale").state is ReservationState.COMMITTED  # caps count it
    assert ledger.customer_units("c", "A") == 2 and ledger.check_invariants() == []
    again = ledger.reserve("released", "cart:2", [("A", 1)], 600, T0 + 200)
    assert again.ok and not again.replayed and ledger.reservation("released").state is ReservationState.HELD
    assert available(ledger, "A") == 10 - 1 - 1 - 2 - 1  # held, guest sale, customer sale, the new hold


def test_rebuild_from_rows_gives_the_same_state():
    tables = FakeTables()
    ledger = Ledger()
    ledger.upsert_sku("A", 10, 2, 3, now=T0)
    ledger.upsert_sku("B", 4, now=T0)
    ledger.reserve("held", "cart:1", [("A", 2), ("B", 1)], 30, T0, customer_id="alice")
    ledger.reserve("sold", "order:1", [("A", 1)], 30, T0, customer_id="alice")
    ledger.commit("sold", T0 + 1)
    ledger.reserve("gone", "cart:2", [("B", 2)], 30, T0)
    ledger.release("gone", T0 + 2)
    ledger.reserve("late", "cart:3", [("B", 1)], 5, T0)
    tables.write(ledger.drain_dirty())

    rebuilt = tables.load()
    assert _sorted_rows(rebuilt.rows()) == _sorted_rows(ledger.rows())
    assert rebuilt.check_invariants() == [] and not rebuilt.drain_dirty()
    assert rebuilt.customer_units("alice", "A") == 3
    # it behaves the same from here: caps, expiry and idempotency survived the restart
    for lg in (ledger, rebuilt):
        assert lg.reserve("more", "cart:9", [("A", 1)], 30, T0 + 3, customer_id="alice").code is ErrorCode.CAP_EXCEEDED
        assert lg.reserve("held", "cart:1", [("B", 1), ("A", 2)], 30, T0 + 3, customer_id="alice").replayed
        assert lg.next_expiry() == T0 + 5
        assert lg.expire_due(T0 + 30).expired == ["late", "held"]
    assert _sorted_rows(rebuilt.rows()) == _sorted_rows(ledger.rows())


def test_rebuild_accepts_timestamps_as_datetimes_and_rejects_rows_that_disagree():
    at = datetime.fromtimestamp(T0 + 30, tz=timezone.utc)
    stock = [dict(sku="A", on_hand=5, reserved=2, sold=0, received=5, low_stock_threshold=0,
                  per_customer_cap=None, version=3, updated_at=at)]
    line = dict(reservation_id="r1", owner="cart:1", customer_id=None, state="held", expires_at=at)
    rebuilt = Ledger.from_rows(stock, [dict(line, sku="A", quantity=2)])
    assert rebuilt.reservation("r1").expires_at == T0 + 30 and rebuilt.check_invariants() == []
    with pytest.raises(ValidationFailed):
        Ledger.from_rows(stock, [dict(line, sku="A", quantity=1), dict(line, sku="B", quantity=1, state="expired")])


def test_check_invariants_reports_books_that_do_not_balance():
    rows = [dict(sku="A", on_hand=5, reserved=2, sold=1, received=5, low_stock_threshold=0, per_customer_cap=None)]
    breaches = Ledger.from_rows(rows, []).check_invariants()
    assert any("received 5 != sold 1 + reserved 2 + available 3" in b for b in breaches)
    assert any("reserved 2 != units in held reservations 0" in b for b in breaches)


# events and errors


def test_events_carry_topic_key_type_and_a_json_ready_payload():
    ledger = make_ledger(("A", 1))
    events = ledger.reserve("r1", "cart:1", [("A", 1)], 30, T0, customer_id="c1").events
    reserved, level, sold_out = events
    assert isinstance(reserved, StockReserved) and (reserved.topic, reserved.key) == ("reservation", "r1")
    assert (level.key, sold_out.key, event_type(sold_out)) == ("A", "A", "SoldOut")
    assert level.topic == sold_out.topic == "inventory"  # stock consumers never read the per-shopper stream
    payload = event_payload(reserved)
    assert payload == {"reservation_id": "r1", "owner": "cart:1", "customer_id": "c1", "lines": [["A", 1]],
                       "expires_at": T0 + 30, "occurred_at": T0}
    all_events = events + ledger.commit("r1", T0).events + ledger.adjust("A", 1, "x", T0).events
    json.dumps([event_payload(e) for e in all_events])
    assert {type(e) for e in all_events} >= {StockCommitted, StockAdjusted, BackInStock}
    with pytest.raises(AttributeError):
        reserved.owner = "someone else"
    assert StockReleased("r", "o", None, (), T0).key == "r"


def test_every_error_code_has_a_status_and_an_exception():
    for code in ErrorCode:
        error = error_for(code, "why")
        assert error.code is code and error.status == STATUS[code] and error.detail == "why"
    assert OutOfStock().status == 409 and UnknownSku().status == 404 and InvalidQuantity().status == 422


def test_errors_survive_pickling_with_their_context():
    error = pickle.loads(pickle.dumps(UnknownSku("no such SKU", sku="X")))
    assert isinstance(error, UnknownSku) and error.detail == "no such SKU" and error.context == {"sku": "X"}


# the model-based test

SKUS = {"A": (6, 2, 2), "B": (8, 3, None), "C": (2, 0, 1)}  # on_hand, threshold, cap
RESERVATION_IDS = [f"r{i}" for i in range(8)]


class LedgerAgainstAModel(RuleBasedStateMachine):
    """Random reserve/release/commit/expire/adjust/restart against a dict model.

    The model mirrors the contract: lazy expiry of a touched, overdue hold; all-or-nothing
    reserve; caps over held + committed units per customer.
    """

    def __init__(self):
        super().__init__()
        self.now = T0
        self.ledger = Ledger()
        self.tables = FakeTables()
        self.stock = {}
        for sku, (on_hand, threshold, cap) in SKUS.items():
            self.ledger.upsert_sku(sku, on_hand, threshold, cap, now=self.now)
            self.stock[sku] = {"on_hand": on_hand, "reserved": 0, "sold": 0, "received": on_hand}
        self.res = {}  # id -> dict(owner, customer, lines, expires_at, state)

    # model helpers

    def avail(self, sku):
        return self.stock[sku]["on_hand"] - self.stock[sku]["reserved"]

    def units(self, customer, sku):
        return sum(
            q for r in self.res.values() if r["customer"] == customer and r["state"] in ("held", "committed")
            for s, q in r["lines"] if s == sku
        )

    def settle(self, rid, state):
        r = self.res[rid]
        r["state"] = state
        r["settled_at"] = self.now
        for sku, qty in r["lines"]:
            self.stock[sku]["reserved"] -= qty
            if state == "committed":
                self.stock[sku]["on_hand"] -= qty
                self.stock[sku]["sold"] += qty

    def expire_if_due(self, rid):
        r = self.res[rid]
        if r["state"] == "held" and r["expires_at"] <= self.now:
            self.settle(rid, "expired")

    def apply(self, result_of):
        before = {s: self.avail(s) for s in SKUS}
        levels_before = {s: (v["on_hand"], v["reserved"]) for s, v in self.stock.items()}
        result = result_of()
        return result, before, levels_before

    def check_events(self, events, before, levels_before):
        """Each operation moves a SKU's `available` one way, so each crossing fires exactly once."""
        counts = Counter((type(e), getattr(e, "sku", None)) for e in events)
        for sku, (on_hand, threshold, _cap) in SKUS.items():
            b, a = before[sku], self.avail(sku)
            assert counts[(SoldOut, sku)] == int(b > 0 and a == 0)
            assert counts[(BackInStock, sku)] == int(b == 0 and a > 0)
            assert counts[(LowStock, sku)] == int(b > threshold >= a > 0)
            changed = levels_before[sku] != (self.stock[sku]["on_hand"], self.stock[sku]["reserved"])
            level_events = [e for e in events if isinstance(e, StockLevelChanged) and e.sku == sku]
            assert bool(level_events) == changed
            if changed:
                last = level_events[-1]
                assert (last.on_hand, last.reserved, last.available) == (
                    self.stock[sku]["on_hand"], self.stock[sku]["reserved"], a)

    # rules

    def pick_id(self, data):
        """Often a held id, else one the ledger knows, else any (possibly unknown) id."""
        held = sorted(r for r, v in self.res.items() if v["state"] == "held")
        choices = [st.sampled_from(ids) for ids in (held, sorted(self.res)) if ids]
        return data.draw(st.one_of(*choices, st.sampled_from(RESERVATION_IDS)))

    @rule(
        rid=st.sampled_from(RESERVATION_IDS),
        owner=st.sampled_from(["cart:1", "order:1"]),
        customer=st.sampled_from(["alice", "bob", None]),
        lines=st.lists(st.tuples(st.sampled_from(sorted(SKUS)), st.integers(1, 2)), min_size=1, max_size=2),
        ttl=st.sampled_from([5.0, 30.0]),
    )
    def reserve(self, rid, owner, customer, lines, ttl):
        merged = Counter()
        for sku, qty in lines:
            merged[sku] += qty
        norm = tuple(sorted(merged.items()))
        known = self.res.get(rid)
        if known is not None and (known["owner"], known["customer"], known["lines"]) != (owner, customer, norm):
            with pytest.raises(ReservationConflict):
                self.ledger.reserve(rid, owner, lines, ttl, self.now, customer_id=customer)
            return
        result, before, levels_before = self.apply(
            lambda: self.ledger.reserve(rid, owner, lines, ttl, self.now, customer_id=customer))
        if known is not None:
            self.expire_if_due(rid)
            assert result.ok and result.replayed and result.state == known["state"]
            assert result.expires_at == known["expires_at"]
        else:
            short = any(q > self.avail(s) for s, q in norm)
            capped = customer is not None and any(
                SKUS[s][2] is not None and self.units(customer, s) + q > SKUS[s][2] for s, q in norm)
            if short or capped:
                assert not result.ok
                assert result.code is (ErrorCode.OUT_OF_STOCK if short else ErrorCode.CAP_EXCEEDED)
                assert result.available == {s: self.avail(s) for s, _ in norm}
            else:
                assert result.ok and not result.replayed
                self.res[rid] = dict(owner=owner, customer=customer, lines=norm, expires_at=self.now + ttl, state="held")
                for s, q in norm:
                    self.stock[s]["reserved"] += q
        self.check_events(result.events, before, levels_before)

    @precondition(lambda self: self.res)
    @rule(data=st.data(), ttl=st.sampled_from([5.0, 30.0]))
    def retry_a_reserve(self, data, ttl):
        rid = data.draw(st.sampled_from(sorted(self.res)))
        r = self.res[rid]
        self.reserve(rid, r["owner"], r["customer"], list(reversed(r["lines"])), ttl)

    @rule(data=st.data())
    def release(self, data):
        rid = self.pick_id(data)
        result, before, levels_before = self.apply(lambda: self.ledger.release(rid, self.now))
        if rid not in self.res:
            assert result.ok and result.state is None
        else:
            self.expire_if_due(rid)
            r = self.res[rid]
            if r["state"] == "held":
                self.settle(rid, "released")
            assert result.ok == (r["state"] != "committed") and result.state == r["state"]
        self.check_events(result.events, before, levels_before)

    @rule(data=st.data())
    def commit(self, data):
        rid = self.pick_id(data)
        result, before, levels_before = self.apply(lambda: self.ledger.commit(rid, self.now))
        if rid not in self.res:
            assert not result.ok and result.code is ErrorCode.RESERVATION_NOT_FOUND
        else:
            self.expire_if_due(rid)
            r = self.res[rid]
            if r["state"] == "held":
                self.settle(rid, "committed")
            assert result.ok == (r["state"] == "committed") and result.state == r["state"]
        self.check_events(result.events, before, levels_before)

    @rule(seconds=st.sampled_from([1.0, 5.0, 30.0]))  # lands exactly on expiries too
    def time_passes(self, seconds):
        self.now += seconds

    @precondition(lambda self: any(r["state"] == "held" for r in self.res.values()))
    @rule(data=st.data())
    def time_reaches_a_holds_expiry(self, data):
        # exactly on the boundary, so the next touch or sweep must treat the hold as expired
        rid = data.draw(st.sampled_from(sorted(r for r, v in self.res.items() if v["state"] == "held")))
        self.now = max(self.now, self.res[rid]["expires_at"])

    @rule()
    def sweep(self):
        result, before, levels_before = self.apply(lambda: self.ledger.expire_due(self.now))
        due = {rid for rid, r in self.res.items() if r["state"] == "held" and r["expires_at"] <= self.now}
        for rid in due:
            self.settle(rid, "expired")
        assert sorted(result.expired) == sorted(due)
        self.check_events(result.events, before, levels_before)

    @rule(sku=st.sampled_from(sorted(SKUS)), delta=st.integers(-4, 4).filter(bool))
    def adjust(self, sku, delta):
        result, before, levels_before = self.apply(lambda: self.ledger.adjust(sku, delta, "count", self.now))
        if self.avail(sku) + delta < 0:
            assert not result.ok and result.code is ErrorCode.OUT_OF_STOCK
        else:
            assert result.ok
            self.stock[sku]["on_hand"] += delta
            self.stock[sku]["received"] += delta
        self.check_events(result.events, before, levels_before)

    @rule(age=st.sampled_from([0.0, 5.0, 30.0]))
    def old_settled_reservations_are_forgotten(self, age):
        self.tables.write(self.ledger.drain_dirty())  # the shard's flushes have written them by then
        before = self.now - age
        gone = self.ledger.forget_settled(before)
        # exactly what a restart would not load either: released, expired, committed without a customer
        assert sorted(gone) == sorted(
            rid for rid, r in self.res.items()
            if (r["state"] in ("released", "expired") or (r["state"] == "committed" and r["customer"] is None))
            and r["settled_at"] < before)
        for rid in gone:
            assert self.ledger.reservation(rid) is None
            del self.res[rid]  # a retry of this id is now a new reservation, as after a restart
            for key in [k for k in self.tables.lines if k[0] == rid]:
                del self.tables.lines[key]  # nor would a restart load it

    @rule()
    def persist_and_restart(self):
        self.tables.write(self.ledger.drain_dirty())
        rebuilt = self.tables.load()
        # every change was marked dirty: the written rows rebuild exactly the ledger's state
        assert _sorted_rows(rebuilt.rows()) == _sorted_rows(self.ledger.rows())
        self.ledger = rebuilt

    # invariants

    @invariant()
    def books_balance_and_match_the_model(self):
        assert self.ledger.check_invariants() == []
        for sku, model in self.stock.items():
            stock = self.ledger.stock(sku)
            assert stock.available >= 0
            assert stock.received == stock.sold + stock.reserved + stock.available
            assert (stock.on_hand, stock.reserved, stock.sold, stock.received) == (
                model["on_hand"], model["reserved"], model["sold"], model["received"])
        for rid, r in self.res.items():
            assert self.ledger.reservation(rid).state == r["state"]

    @invariant()
    def the_sweep_knows_the_next_expiry(self):
        held = [r["expires_at"] for r in self.res.values() if r["state"] == "held"]
        assert self.ledger.next_expiry() == (min(held) if held else None)

    @invariant()
    def per_customer_caps_hold(self):
        for customer in ("alice", "bob"):
            for sku, (_on_hand, _threshold, cap) in SKUS.items():
                units = self.units(customer, sku)
                assert self.ledger.customer_units(customer, sku) == units
                if cap is not None:
                    assert units <= cap


LedgerAgainstAModel.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_ledger_agrees_with_a_model_under_random_operations = LedgerAgainstAModel.TestCase


def test_adopt_takes_only_skus_it_does_not_know():
    mine = Ledger()
    mine.upsert_sku("A", 5, now=0.0)
    mine.reserve("r1", "cart:1", [("A", 2)], 60, 0.0)
    seeded = Ledger.from_rows(
        [{"sku": "A", "on_hand": 99, "reserved": 0, "sold": 0, "received": 99, "low_stock_threshold": 0,
          "per_customer_cap": None, "version": 0, "updated_at": 0.0},
         {"sku": "B", "on_hand": 7, "reserved": 1, "sold": 0, "received": 7, "low_stock_threshold": 0,
          "per_customer_cap": 3, "version": 0, "updated_at": 0.0}],
        [{"reservation_id": "rb", "sku": "B", "owner": "cart:2", "customer_id": "c", "quantity": 1, "state": "held",
          "expires_at": 30.0, "created_at": 0.0, "updated_at": 0.0}],
    )
    assert mine.adopt(seeded) == ["B"]
    assert mine.levels()["A"].available == 3  # its own A kept, the seed's stale A ignored
    assert mine.levels()["B"].available == 6 and mine.customer_units("c", "B") == 1
    assert mine.next_expiry() == 30.0
    assert mine.check_invariants() == []
