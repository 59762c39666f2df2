"""The checkout benchmark's own arithmetic: exact percentiles, CPU by part, argument checks."""
import pytest

from loadtests.bench_checkout import cpu_by_part, latency, parse_args, percentile

pytestmark = pytest.mark.unit


def test_percentile_is_nearest_rank_of_the_exact_values():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_latency_of_no_orders_is_empty_not_an_error():
    assert latency([]) == {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}


def test_cpu_by_part_counts_only_the_window_and_processes_born_in_it_from_birth():
    before = {1: ("postgres", 10.0), 2: ("owners", 5.0)}
    after = {1: ("postgres", 12.5), 2: ("owners", 9.0), 3: ("owners", 1.0)}
    assert cpu_by_part(before, after) == {"owners": 5.0, "postgres": 2.5}


def test_defaults_are_one_run_of_eight_users_on_the_embedded_localstripe():
    args = parse_args([])
    assert (args.users, args.localstripe, args.three_ds_share) == ([8], ["embedded"], 0.0)
    args = parse_args(["--users", "4", "--users", "16", "--localstripe", "embedded", "--localstripe", "memory"])
    assert (args.users, args.localstripe) == ([4, 16], ["embedded", "memory"])


@pytest.mark.parametrize("argv", [["--users", "0"], ["--three-ds-share", "1.5"], ["--localstripe", "stripe"],
                                  ["--products", "1"]])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        parse_args(argv)
