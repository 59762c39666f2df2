"""flash_pairs' schedule and summary (pure: no Surge is started)."""
from __future__ import annotations

import pytest

from loadtests.flash_pairs import pair_order, summarise

pytestmark = pytest.mark.unit


def test_pairs_alternate_which_side_goes_first():
    orders = [pair_order(i) for i in range(4)]
    assert orders == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]
    assert [o[0] for o in orders].count("a") == [o[0] for o in orders].count("b")


def run(side: str, pair: int, first: bool, rate: float | None, cpu: float | None = 0.6) -> dict:
    return {"system": side, "pair": pair, "first": first, "purchases_per_s": rate, "cpu_ms_per_purchase": cpu}


def test_summary_splits_the_ratio_by_which_side_went_first():
    runs = [run("a", 1, True, 2000, 0.60), run("b", 1, False, 2100, 0.50),
            run("b", 2, True, 2400, 0.50), run("a", 2, False, 2000, 0.70)]
    s = summarise(runs)
    assert s["b_over_a_purchases_per_s"] == [1.05, 1.2]
    assert s["mean_b_over_a"] == 1.125
    assert s["mean_b_over_a_a_first"] == 1.05 and s["mean_b_over_a_b_first"] == 1.2
    assert s["b_over_a_cpu_ms_per_purchase"] == round(0.5 / 0.65, 3)


def test_a_load_that_sold_nothing_leaves_its_pair_out_of_the_means():
    runs = [run("a", 1, True, None, None), run("b", 1, False, 2100),
            run("b", 2, True, 2200), run("a", 2, False, 2000)]
    s = summarise(runs)
    assert s["b_over_a_purchases_per_s"] == [None, 1.1]
    assert s["mean_b_over_a"] == 1.1 and s["mean_b_over_a_a_first"] is None and s["mean_b_over_a_b_first"] == 1.1
    assert s["b_over_a_cpu_ms_per_purchase"] == 1.0  # A's one known CPU figure against B's mean
