"""Two Surge configurations (or code versions) on the flash-sale load, in back-to-back pairs.

    python -m loadtests.flash_pairs --b-env SURGE_GC_GEN0_THRESHOLD=0 [--a-env K=V ...] [--pairs 4] [--seconds 16]
    (two code versions: --b-env PYTHONPATH=<a checkout of the other commit>)

Whole `make bench-flash` runs move by about ±10% on a 2-core box, which hides a change of a few
percent. This measures A and B alternately instead, each on a fresh Surge, so slow drift of the
box falls on both sides of a pair.

Contract:
- Pairs alternate which side goes first: A then B in pairs 1, 3, …; B then A in pairs 2, 4, ….
  Measured here, the first load of a pair did better (in two 3-pair runs with a fixed order, the
  same change gained +3% as B and +12% as A), so a fixed order puts that bias on one side. Use an
  even number of pairs. Each side: a fresh Surge (`surge_up`, 2 API replicas, the replica listener,
  plus the side's `--a-env`/`--b-env`); one SKU put at 1,000,000 units; a 5 s unrecorded warm-up on
  another SKU; then `--seconds` of the Surge-only flash load (`locustfiles/flash_sale.py`, 100
  users spawned at 1,000/s, no think time) through the replica listener.
- Figures per load: `purchases_per_s` (the Locust tally's purchases over its selling window, as in
  `bench_flash`), `p50_ms`/`p99_ms` of the purchases, `req_per_s` of all answers, and `cpu_ms_per_purchase`: CPU seconds of
  Surge's whole process tree (Postgres included) over the load, per purchase.
- Each run records `first` (true for the side that went first in its pair).
- Summary: `b_over_a_purchases_per_s` per pair and their mean; the same mean over the pairs where
  A went first and over those where B did (their difference is the order's bias); and
  `b_over_a_cpu_ms_per_purchase`, B's mean CPU per purchase over A's. Writes
  `loadtests/results/flash_pairs.json`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import uuid
from pathlib import Path

from loadtests.bench_flash import http_json
from loadtests.results import code_version, current_command, print_results, write_results
from loadtests.runner import run_locust
from loadtests.servers import surge_up

USERS, SPAWN_RATE, WARMUP_S, STOCK = 100, 1000.0, 5, 1_000_000


def pair_order(pair: int) -> tuple[str, str]:
    """The sides of pair `pair` (0-based) in the order they run: A first in even pairs, B in odd."""
    return ("a", "b") if pair % 2 == 0 else ("b", "a")


def summarise(runs: list[dict]) -> dict:
    """B over A per pair (purchases/s), overall and by which side went first, and B's CPU per
    purchase over A's. `runs`: one dict per load with `system` ("a"/"b"), `pair` (1-based),
    `first`, `purchases_per_s` and `cpu_ms_per_purchase` (None when a load sold nothing)."""
    by_pair: dict[int, dict[str, dict]] = {}
    for run in runs:
        by_pair.setdefault(run["pair"], {})[run["system"]] = run
    ratios, a_first, b_first = [], [], []
    for pair in sorted(by_pair):
        a, b = by_pair[pair].get("a", {}), by_pair[pair].get("b", {})
        ratio = (round(b["purchases_per_s"] / a["purchases_per_s"], 3)
                 if a.get("purchases_per_s") and b.get("purchases_per_s") else None)
        ratios.append(ratio)
        if ratio is not None:
            (a_first if a.get("first") else b_first).append(ratio)

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 3) if values else None

    def cpu(side: str) -> float | None:
        return mean([r["cpu_ms_per_purchase"] for r in runs if r["system"] == side and r.get("cpu_ms_per_purchase")])

    cpu_a, cpu_b = cpu("a"), cpu("b")
    return {"b_over_a_purchases_per_s": ratios, "mean_b_over_a": mean([r for r in ratios if r is not None]),
            "mean_b_over_a_a_first": mean(a_first), "mean_b_over_a_b_first": mean(b_first),
            "b_over_a_cpu_ms_per_purchase": round(cpu_b / cpu_a, 3) if cpu_a and cpu_b else None}


def one_side(env: dict[str, str], seconds: int) -> dict:
    with surge_up({"SURGE_API_REPLICAS": "2", **env}) as surge:
        url = surge.replica_url or surge.url

        def load(run_s: int, pids: dict[str, int] | None = None) -> tuple[dict, dict]:
            sku = f"PAIR-{uuid.uuid4().hex[:10]}"
            status, body = http_json("PUT", f"{surge.url}/admin/inventory/{sku}", {"on_hand": STOCK}, surge.admin_token)
            if status != 200:
                raise RuntimeError(f"could not stock {sku}: {status} {body}")
            with tempfile.TemporaryDirectory(prefix="surge-pairs-") as tmp:
                out = Path(tmp) / "tally.json"
                r = run_locust("flash_sale.py", url, USERS, SPAWN_RATE, run_s, server_pids=pids, reset_stats=False,
                               extra_env={"SURGE_BENCH_TARGET": "surge", "SURGE_BENCH_SKU": sku, "SURGE_BENCH_OUT": str(out)})
                return r, json.loads(out.read_text())

        load(WARMUP_S)
        r, tally = load(seconds, {"surge": surge.pid})
    purchases = tally["purchases"]
    window = (tally["last_purchase_at"] - tally["first_purchase_sent_at"]) if purchases else None
    buy = (tally.get("stats") or {}).get("purchase", {})
    return {"env": env, "purchases": purchases, "purchases_per_s": round(purchases / window, 1) if window else None,
            "p50_ms": buy.get("p50_ms"), "p99_ms": buy.get("p99_ms"), "req_per_s": r["req_per_s"],
            "unexpected": tally["unexpected"],
            "cpu_ms_per_purchase": round(r["cpu_s"]["surge"] * 1000 / purchases, 3) if purchases else None}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtests.flash_pairs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a-env", action="append", default=[], metavar="KEY=VALUE", help="settings of side A (repeatable)")
    p.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE", help="settings of side B (repeatable)")
    p.add_argument("--pairs", type=int, default=4, help="pairs of loads (even: each side goes first as often)")
    p.add_argument("--seconds", type=int, default=16, help="length of each measured load")
    args = p.parse_args(argv)
    sides = {"a": dict(kv.split("=", 1) for kv in args.a_env), "b": dict(kv.split("=", 1) for kv in args.b_env)}
    code = code_version()  # before the runs: the code may change while they go on
    runs = []
    for i in range(args.pairs):
        for position, side in enumerate(pair_order(i)):
            run = {"system": side, "pair": i + 1, "first": position == 0, **one_side(sides[side], args.seconds)}
            runs.append(run)
            print(f"pair {i + 1} {side}: {run['purchases_per_s']} purchases/s, p99 {run['p99_ms']} ms, "
                  f"{run['cpu_ms_per_purchase']} ms CPU per purchase", flush=True)
    summary = {"a_env": sides["a"], "b_env": sides["b"], **summarise(runs)}
    print_results(write_results("flash_pairs", runs, summary, command=current_command(), code=code))


if __name__ == "__main__":
    main()
