"""The cart aggregate's rules, without servers."""
import pytest

from actors.domain.cart import MAX_LINE_QUANTITY, Cart, Hold, plan_holds
from actors.domain.errors import CapExceeded, InvalidQuantity, NotFound

pytestmark = pytest.mark.unit


def test_set_line_adds_then_replaces_quantity_and_bumps_version():
    cart = Cart("c1")
    cart.set_line("A", 2, now=1.0)
    cart.set_line("A", 5, now=2.0)
    assert cart.lines["A"].quantity == 5 and cart.units == 5 and cart.version == 2
    assert cart.lines["A"].added_at == 1.0


@pytest.mark.parametrize("quantity", [0, -1, MAX_LINE_QUANTITY + 1, True, 1.5])
def test_quantities_outside_the_rules_are_refused(quantity):
    cart = Cart("c1")
    with pytest.raises(InvalidQuantity):
        cart.set_line("A", quantity, now=1.0)
    assert cart.lines == {} and cart.version == 0


def test_per_customer_cap_bounds_a_line():
    cart = Cart("c1")
    cart.set_line("FLASH", 2, now=1.0, cap=2)
    with pytest.raises(CapExceeded):
        cart.set_line("FLASH", 3, now=1.0, cap=2)
    assert cart.lines["FLASH"].quantity == 2


def test_save_for_later_and_back():
    cart = Cart("c1")
    cart.set_line("A", 3, now=1.0)
    cart.save_for_later("A")
    assert "A" not in cart.lines and cart.saved == {"A": 3}
    cart.set_line("A", 3, now=2.0)  # back in the cart: no longer saved
    assert cart.saved == {} and cart.lines["A"].quantity == 3
    with pytest.raises(NotFound):
        cart.save_for_later("missing")


def test_adding_a_saved_sku_takes_it_out_of_saved():
    cart = Cart("c1")
    cart.set_line("A", 1, now=1.0)
    cart.save_for_later("A")
    cart.set_line("A", 2, now=2.0)
    assert cart.saved == {} and cart.lines["A"].quantity == 2


def test_expired_holds_take_their_units_out_of_the_line():
    cart = Cart("c1")
    cart.set_line("F", 3, now=1.0, holds=[Hold("h1", 1, expires_at=100.0), Hold("h2", 2, expires_at=200.0)])
    cart.set_line("A", 1, now=1.0)
    assert cart.drop_expired_holds(99.0) == [] and cart.lines["F"].expires_at == 100.0
    assert [h.reservation_id for h in cart.drop_expired_holds(100.0)] == ["h1"]
    assert cart.lines["F"].quantity == 2 and [h.reservation_id for h in cart.holds()] == ["h2"]
    cart.drop_expired_holds(200.0)
    assert "F" not in cart.lines and "A" in cart.lines


def test_holds_must_cover_a_held_line():
    with pytest.raises(ValueError):
        Cart("c1").set_line("F", 2, now=1.0, holds=[Hold("h1", 1, 10.0)])


def test_growing_a_held_line_holds_only_the_added_units():
    plan = plan_holds([Hold("a", 2, 10.0)], 3)
    assert plan.keep == [Hold("a", 2, 10.0)] and plan.release == [] and plan.reserve == 1


def test_shrinking_releases_whole_holds_and_splits_at_most_one():
    holds = [Hold("a", 1, 10.0), Hold("b", 2, 10.0), Hold("c", 1, 10.0)]
    exact = plan_holds(holds, 2)
    assert [h.reservation_id for h in exact.keep] == ["a", "c"] and [h.reservation_id for h in exact.release] == ["b"]
    assert exact.reserve == 0
    split = plan_holds([Hold("a", 3, 10.0)], 2)
    assert split.keep == [] and split.release == [Hold("a", 3, 10.0)] and split.reserve == 2


def test_doc_round_trip_keeps_lines_holds_saved_and_coupon():
    cart = Cart("c1", customer_id="u1")
    cart.set_line("F", 1, now=1.0, holds=[Hold("h1", 1, expires_at=100.0)])
    cart.set_line("A", 4, now=2.0)
    cart.set_line("S", 1, now=2.0)
    cart.save_for_later("S")
    cart.set_coupon(" save10 ")
    again = Cart.from_doc("c1", "u1", "USD", "active", cart.version, cart.to_doc())
    assert again.to_doc() == cart.to_doc() and again.coupon_code == "SAVE10"
    assert again.lines["F"].holds == [Hold("h1", 1, 100.0)]


def test_merge_adds_quantities_within_caps_and_moves_holds():
    mine, guest = Cart("c1", customer_id="u1"), Cart("g1")
    mine.set_line("A", 2, now=1.0)
    guest.set_line("A", 3, now=1.0)
    guest.set_line("B", 1, now=1.0)
    guest.set_line("F", 1, now=1.0, holds=[Hold("gh", 1, 50.0)])
    mine.set_line("C", 1, now=1.0)
    guest.set_line("C", 5, now=1.0)
    dropped = mine.absorb(guest, now=2.0, caps={"C": 2})
    assert {s: l.quantity for s, l in mine.lines.items()} == {"A": 5, "B": 1, "C": 2, "F": 1}
    assert mine.lines["F"].holds == [Hold("gh", 1, 50.0)] and dropped == []
    assert guest.status == "merged" and guest.lines == {}


def test_merge_keeps_the_customers_hold_and_returns_the_guests_to_release():
    mine, guest = Cart("c1", customer_id="u1"), Cart("g1")
    mine.set_line("F", 1, now=1.0, holds=[Hold("mine", 1, 50.0)])
    guest.set_line("F", 1, now=1.0, holds=[Hold("theirs", 1, 60.0)])
    dropped = mine.absorb(guest, now=2.0)
    assert [h.reservation_id for h in mine.lines["F"].holds] == ["mine"]
    assert [h.reservation_id for h in dropped] == ["theirs"]


def test_take_ordered_removes_bought_units_and_keeps_later_additions():
    cart = Cart("c1")
    cart.set_line("A", 3, now=1.0)
    cart.set_line("F", 1, now=1.0, holds=[Hold("h", 1, 50.0)])
    cart.set_line("NEW", 1, now=5.0)
    cart.set_coupon("SAVE10")
    assert cart.take_ordered([("A", 2), ("F", 1)]) is True
    assert {s: l.quantity for s, l in cart.lines.items()} == {"A": 1, "NEW": 1}
    assert cart.coupon_code is None
