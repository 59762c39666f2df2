"""The realtime benchmark's own arithmetic: how long each client took to see each change."""
import pytest

from loadtests.bench_realtime import hub_impl, time_to_see

pytestmark = pytest.mark.unit


def test_a_change_is_seen_at_the_first_frame_showing_it_or_a_later_level():
    changes = [(99, 10.0), (98, 10.05), (97, 10.10)]  # (available after it, 201 time)
    receipts = [(9.0, 100), (10.02, 99), (10.16, 97)]  # 98 was coalesced away for this client
    times, unseen = time_to_see(changes, receipts)
    assert [round(t) for t in times] == [20, 110, 60] and unseen == 0


def test_a_change_never_shown_to_the_client_is_unseen_and_an_early_frame_counts_negative():
    changes = [(5, 1.0), (4, 2.0)]
    times, unseen = time_to_see(changes, [(0.999, 5)])  # the frame beat the driver's 201
    assert [round(t) for t in times] == [-1] and unseen == 1
    assert time_to_see(changes, []) == ([], 2)


def test_bench_hub_names_pick_the_fanout_the_loop_and_whole_passes():
    assert hub_impl("raw") == ("raw", "uvloop", None)
    assert hub_impl("raw-whole") == ("raw", "uvloop", 0)
    assert hub_impl("raw-128/asyncio") == ("raw", "asyncio", 128)
    assert hub_impl("direct") == ("direct", "asyncio", None)
    assert hub_impl("queued/uvloop") == ("queued", "uvloop", None)


@pytest.mark.parametrize("spec", ["raw-0", "raw-x", "fast", "raw/trio", "raw-whole-1"])
def test_bench_hub_names_that_mean_nothing_are_refused(spec):
    with pytest.raises(ValueError):
        hub_impl(spec)
