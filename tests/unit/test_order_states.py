"""The order state machine."""
import pytest

from actors.domain.errors import InvalidTransition, ReturnWindowClosed
from actors.domain.order import RETURN_WINDOW_S, OrderStatus as S, can_transition, check_return_window, check_transition

pytestmark = pytest.mark.unit


def test_the_happy_path_and_the_return_path_are_allowed():
    path = [S.PENDING_PAYMENT, S.PAID, S.FULFILLING, S.SHIPPED, S.DELIVERED, S.RETURN_REQUESTED, S.RETURN_APPROVED,
            S.RETURN_RECEIVED, S.REFUNDED]
    for a, b in zip(path, path[1:]):
        check_transition(a, b)


@pytest.mark.parametrize("a,b", [(S.PENDING_PAYMENT, S.SHIPPED), (S.SHIPPED, S.CANCELLED), (S.CANCELLED, S.PAID),
                                 (S.REFUNDED, S.PAID), (S.PAID, S.DELIVERED), (S.FULFILLING, S.CANCELLED)])
def test_skipping_or_reversing_is_refused(a, b):
    assert not can_transition(a, b)
    with pytest.raises(InvalidTransition):
        check_transition(a, b)


def test_terminal_states_have_no_way_out():
    for terminal in (S.CANCELLED, S.REFUNDED):
        assert not any(can_transition(terminal, s) for s in S)


def test_return_window():
    check_return_window(delivered_at=1000.0, now=1000.0 + RETURN_WINDOW_S)
    with pytest.raises(ReturnWindowClosed):
        check_return_window(delivered_at=1000.0, now=1000.0 + RETURN_WINDOW_S + 1)
    with pytest.raises(ReturnWindowClosed):
        check_return_window(delivered_at=None, now=1.0)
