"""Two Surge configurations (or code versions) on the flash-sale load, in back-to-back pairs.

    python -m loadtests.flash_pairs --b-env SURGE_GC_GEN0_THRESHOLD=0 [--a-env K=V ...] [--pairs 3] [--seconds 16]
    (two code versions: --b-env PYTHONPATH=<a checkout of the other commit>)

Whole `make bench-flash` runs move by about ±10% on a 2-core box, which hides a change of a few
percent. This measures A and B alternately instead, each on a fresh Surge, so slow drift of the
box falls on both sides of a pair.

Contract:
- Per pair, A then B. Each side: a fresh Surge (`surge_up`, 2 API replicas, the replica listener,
  plus the side's `--a-env`/`--b-env`); one SKU put at 1,000,000 units; a 5 s unrecorded warm-up on
  another SKU; then `--seconds` of the Surge-only flash load (`locustfiles/flash_sale.py`, 100
  users spawned at 1,000/s, no think time) through the replica listener.
- Figures per load: `purchases_per_s` (the Locust tally's purchases over its selling window, as in
  `bench_flash`), `p50_ms`/`p99_ms` of the purchases, `req_per_s` of all answers, and `cpu_ms_per_purchase`: CPU seconds of
  Surge's whole process tree (Postgres included) over the load, per purchase.
- Summary: `b_over_a_purchases_per_s` per pair and their mean. Writes
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
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--seconds", type=int, default=16, help="length of each measured load")
    args = p.parse_args(argv)
    sides = {"a": dict(kv.split("=", 1) for kv in args.a_env), "b": dict(kv.split("=", 1) for kv in args.b_env)}
    code = code_version()  # before the runs: the code may change while they go on
    runs, ratios = [], []
    for i in range(args.pairs):
        pair = {side: one_side(env, args.seconds) for side, env in sides.items()}
        a, b = pair["a"]["purchases_per_s"], pair["b"]["purchases_per_s"]
        ratios.append(round(b / a, 3) if a and b else None)
        for side, run in pair.items():
            runs.append({"system": side, "pair": i + 1, **run})
            print(f"pair {i + 1} {side}: {run['purchases_per_s']} purchases/s, p99 {run['p99_ms']} ms, "
                  f"{run['cpu_ms_per_purchase']} ms CPU per purchase", flush=True)
    known = [r for r in ratios if r is not None]
    summary = {"a_env": sides["a"], "b_env": sides["b"], "b_over_a_purchases_per_s": ratios,
               "mean_b_over_a": round(statistics.fmean(known), 3) if known else None}
    print_results(write_results("flash_pairs", runs, summary, command=current_command(), code=code))


if __name__ == "__main__":
    main()
