"""Flash sale: Surge's durable reservations vs the baseline's one-row UPDATE, on one hot SKU.

    python -m loadtests.bench_flash [--rounds 2] [--run-time 20] [--users 100] [--stock 5000]
        [--spawn-rate N] [--warmup 3]
        [--systems baseline surge surge-ingress]
        [--surge-url URL --surge-database-url DSN --admin-token T [--surge-pid PID] [--surge-replica-url URL]]

Contract:
- Without ``--surge-url`` a whole Surge is started (``surge_up``: temporary data dir, free loopback
  ports) and stopped at the end. With it, that running Surge is used (loopback only); its
  database DSN and admin token must then be given too.
- The baseline app (``python -m loadtests.baseline``, one uvicorn worker) is started on a free
  127.0.0.1 port with ``BASELINE_DATABASE_URL`` = Surge's own Postgres (its own table
  ``baseline_stock``), so both systems sell from the same database server on the same machine.
  It is stopped by pid however the bench ends.
- Systems: ``baseline``; ``surge``, through the front door Surge offers a flash sale: the API
  replicas' own listener (``SURGE_REPLICA_PORT``, which the Surge started here has on a free port;
  ``--surge-replica-url`` for a running one), else Serve's ingress; and, when there is a listener,
  ``surge-ingress``: the same Surge through Serve's HAProxy ingress, in the same rounds, so the two
  doors are compared side by side (``surge_vs_surge_ingress_purchases_per_s``).
- A "purchase" is one unit leaving available stock exactly once, durably: a Surge reservation of
  one unit answered 201 (after the Postgres commit), or the baseline's ``UPDATE ... RETURNING``
  answered 200.
- Per system, one unrecorded warm-up sale of ``--warmup`` seconds (0: none) on its own SKU, then
  ``--rounds`` rounds, interleaved baseline, surge / surge, baseline / ...: each run puts a fresh
  SKU (``FLASH-<system>-<round>-<hex>``) at ``--stock`` units, spikes ``--users`` Locust users
  onto it at once (``--spawn-rate``, default 10 x users, i.e. all within ~0.1 s; statistics include
  the spawn), each buying one unit at a time with no think time for ``--run-time`` seconds, then
  reads the units taken from the database (and, for Surge, from ``/inventory/levels`` too).
- Figures per run: ``purchases_per_s`` = purchases / (arrival of the last purchase answer -
  sending of the first request that became a purchase), from the Locust process's own tally;
  ``p50_ms``/``p99_ms`` of the ``purchase`` answers, ``p99_ms_all`` and ``req_per_s`` of all
  answers (Locust's final statistics, written by the locustfile when Locust quits;
  whole-millisecond granularity); ``sold`` = units taken according
  to the database; ``oversold`` = max(0, sold - stock); ``mismatch`` = database units - client-
  counted purchases (must be 0); ``errors``: ``sold_out`` and ``shed`` (429) answers and every
  unexpected answer by kind (``failure: HTTP 503`` ...); ``cpu_s``: CPU seconds during the run of
  the system's server process tree (``server``; for Surge without its Postgres) and of the shared
  Postgres (``postgres``), which does the baseline's work too.
- Writes ``loadtests/results/flash_sale.json`` (bench ``flash_sale``): one run per system with
  means over rounds (purchases/s, latencies, req/s), totals over rounds (``sold``, ``stock``
  offered, ``oversold``, ``errors``, ``cpu_s``) and the per-round figures; summary with
  ``surge_vs_baseline_purchases_per_s`` (ratio of the means), Surge's p99, ``oversold_total``,
  the target and whether it was met, and ``code``: the git commit and the files changed on top of
  it when the bench started.
- Exit status 2 if Surge is not serving, 1 if anything was oversold, any answer was unexpected
  or the database and client counts disagree (results are still written), else 0.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil

from loadtests.bench_trivial import ratio
from loadtests.servers import REPO_ROOT, free_port, start_baseline, stop, wait_ok
from loadtests.results import code_version, current_command, print_results, write_results
from loadtests.runner import LOOPBACK, check_loopback_url, run_locust

LOCUSTFILE = "flash_sale.py"
BENCH = "flash_sale"
LOADGEN_BUSY = 0.85  # share of one core above which a single Locust process is the bottleneck
TARGET_RATIO = 2.0
TARGET_P99_MS = 50.0
TARGET_TEXT = "surge >= 2x baseline purchases/s, p99 <= 50 ms, 0 oversold"
# "surge" is the front door Surge offers a flash sale: the replicas' own listener when there is one
# (SURGE_REPLICA_PORT), else Serve's ingress; with a listener, "surge-ingress" is the same Surge
# through Serve's HAProxy ingress, measured in the same rounds.
SYSTEMS = ("baseline", "surge", "surge-ingress")


# --- HTTP and database helpers -------------------------------------------------------------------

def http_json(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10) -> tuple[int, Any]:
    """One JSON request; returns (status, decoded body or None). HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


async def _fetch(dsn: str, query: str, *params: Any) -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return [dict(r) for r in await conn.fetch(query, *params, timeout=10)]
    finally:
        await conn.close()


def fetch(dsn: str, query: str, *params: Any) -> list[dict[str, Any]]:
    return asyncio.run(_fetch(dsn, query, *params))


async def _postgres_pid(dsn: str) -> int | None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        backend = await conn.fetchval("select pg_backend_pid()", timeout=10)
        try:  # while the connection is open, its backend's parent is the postmaster
            parent = psutil.Process(backend).parent()
        except psutil.Error:
            return None
        return parent.pid if parent is not None else None
    finally:
        await conn.close()


def postgres_pid(dsn: str) -> int | None:
    """The postmaster's pid, so Postgres's CPU can be told apart; None if it is not on this machine."""
    return asyncio.run(_postgres_pid(dsn))


# --- the two systems -----------------------------------------------------------------------------

class Target:
    """One system under load. `kind` (``surge`` or ``baseline``) is what the locustfile speaks; a
    Surge can be measured through two front doors, as two systems."""

    def __init__(self, system: str, url: str, pid: int | None, dsn: str, token: str | None = None):
        self.system, self.url, self.pid, self.dsn, self.token = system, url, pid, dsn, token
        self.kind = "baseline" if system == "baseline" else "surge"

    def reset(self, sku: str, stock: int) -> None:
        if self.kind == "surge":
            status, body = http_json("PUT", f"{self.url}/admin/inventory/{sku}", {"on_hand": stock}, self.token)
            ok = status == 200 and isinstance(body, dict) and body.get("available") == stock
        else:
            status, body = http_json("POST", f"{self.url}/reset", {"sku": sku, "stock": stock})
            ok = status == 200 and isinstance(body, dict) and body.get("stock") == stock
        if not ok:
            raise RuntimeError(f"could not put {sku} at {stock} units on {self.system}: {status} {body}")

    def units_taken(self, sku: str, stock: int) -> dict[str, Any]:
        """What the database says left available stock, and the figures it was read from."""
        if self.kind == "baseline":
            rows = fetch(self.dsn, "select stock from baseline_stock where sku = $1", sku)
            remaining = rows[0]["stock"] if rows else None
            return {"units": None if remaining is None else stock - remaining, "remaining": remaining}
        level_rows = fetch(self.dsn, "select on_hand, reserved, sold from stock_levels where sku = $1", sku)
        line_rows = fetch(self.dsn, "select count(*) as n, coalesce(sum(quantity), 0) as units from reservation_lines "
                                    "where sku = $1 and state in ('held', 'committed')", sku)
        status, api = http_json("GET", f"{self.url}/inventory/levels?{urllib.parse.urlencode({'sku': sku})}")
        api_level = api.get(sku) if status == 200 and isinstance(api, dict) else None
        level = level_rows[0] if level_rows else None
        units_levels = None if level is None else int(level["reserved"]) + int(level["sold"])
        units_lines = int(line_rows[0]["units"])
        return {
            # the larger count, so that neither table can hide an oversell
            "units": max(units_lines, units_levels if units_levels is not None else 0),
            "stock_levels": None if level is None else {k: int(v) for k, v in level.items()},
            "reservation_lines": {"held_or_committed": int(line_rows[0]["n"]), "units": units_lines},
            "api_levels": None if api_level is None else {k: api_level.get(k) for k in ("on_hand", "reserved", "available", "sold")},
        }


# --- one run -------------------------------------------------------------------------------------

def run_once(target: Target, sku: str, args: argparse.Namespace, seconds: int, pg_pid: int | None) -> dict[str, Any]:
    target.reset(sku, args.stock)
    pids: dict[str, int] = {}
    if target.pid:
        pids["server"] = target.pid
    if pg_pid:
        pids["postgres"] = pg_pid
    with tempfile.TemporaryDirectory(prefix="surge-flash-") as tmp:
        out = Path(tmp) / "tally.json"
        r = run_locust(LOCUSTFILE, target.url, args.users, args.spawn_rate, seconds,
                       extra_env={"SURGE_BENCH_TARGET": target.kind, "SURGE_BENCH_SKU": sku,
                                  "SURGE_BENCH_OUT": str(out)},
                       server_pids=pids, reset_stats=False)
        if not out.exists():
            raise RuntimeError(f"the Locust process wrote no tally ({out}); errors: {r['errors']}")
        tally = json.loads(out.read_text())
    time.sleep(1.0)  # every answer came after its commit; this only lets a straggler show up as a mismatch
    db = target.units_taken(sku, args.stock)

    cpu = dict(r["cpu_s"])
    if target.kind == "surge" and "server" in cpu and "postgres" in cpu:
        if pg_pid in {p.pid for p in _tree(target.pid)}:
            cpu["server"] = round(cpu["server"] - cpu["postgres"], 2)

    purchases = tally["purchases"]
    first, last = tally["first_purchase_sent_at"], tally["last_purchase_at"]
    window = (last - first) if purchases and first is not None and last is not None else None
    units = db["units"]
    # Locust's final statistics from the tally; the CSV the runner parsed can lag up to 1 s behind
    final = tally.get("stats") or {**r["by_name"], "Aggregated": {k: r[k] for k in ("requests", "failures", "req_per_s", "p50_ms", "p99_ms")}}
    buy = final.get("purchase", {})
    everything = final["Aggregated"]
    errors: dict[str, int] = {"sold_out": tally["sold_out"], "shed": tally["shed"]}
    for kind, n in tally["unexpected"].items():
        errors[f"failure: {kind}"] = n
    # anything Locust counted as failed that the tally did not classify (should not happen)
    unclassified = everything["failures"] - sum(tally["unexpected"].values())
    if unclassified > 0:
        errors["failure: unclassified (see locust_errors)"] = unclassified
    return {
        "sku": sku,
        "purchases_per_s": round(purchases / window, 1) if window else None,
        "p50_ms": buy.get("p50_ms"),
        "p99_ms": buy.get("p99_ms"),
        "p99_ms_all": everything["p99_ms"],
        "req_per_s": everything["req_per_s"],
        "purchases": purchases,
        "selling_s": round(window, 3) if window else None,
        "sold": units,
        "stock": args.stock,
        "oversold": max(0, (units or 0) - args.stock),
        "mismatch": None if units is None else units - purchases,
        "errors": errors,
        "requests": everything["requests"],
        "by_name": {k: v for k, v in final.items() if k != "Aggregated"},
        "locust_errors": r["errors"],
        "database": db,
        "cpu_s": cpu,
        "loadgen_cpu_s": r["loadgen_cpu_s"],
        "loadgen_warnings": sorted(set(r["loadgen_warnings"])),
        "wall_s": r["wall_s"],
    }


def _tree(pid: int | None) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except (psutil.Error, ValueError, TypeError):
        return []


# --- aggregation ---------------------------------------------------------------------------------

def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.fmean(values), 2) if values else None


def aggregate(system: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    errors: dict[str, int] = {}
    cpu: dict[str, float] = {}
    for r in rounds:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
        for k, v in r["cpu_s"].items():
            cpu[k] = round(cpu.get(k, 0.0) + v, 2)
    return {
        "system": system,
        "purchases_per_s": _mean(rounds, "purchases_per_s"),
        "p50_ms": _mean(rounds, "p50_ms"),
        "p99_ms": _mean(rounds, "p99_ms"),
        "p99_ms_all": _mean(rounds, "p99_ms_all"),
        "req_per_s": _mean(rounds, "req_per_s"),
        "sold": sum(r["sold"] or 0 for r in rounds),
        "stock": sum(r["stock"] for r in rounds),
        "oversold": sum(r["oversold"] for r in rounds),
        "errors": errors,
        "cpu_s": cpu,
        "rounds": rounds,
    }


def unexpected_failures(run: dict[str, Any]) -> int:
    return sum(v for k, v in run["errors"].items() if k.startswith("failure:"))


def print_table(runs: list[dict[str, Any]]) -> None:
    cols = ("system", "purchases_per_s", "p50_ms", "p99_ms", "p99_ms_all", "req_per_s", "sold", "stock",
            "oversold", "sold_out", "shed", "failures", "cpu_server", "cpu_pg")
    rows = []
    for run in runs:
        cpu = run["cpu_s"]
        rows.append([run["system"], run["purchases_per_s"], run["p50_ms"], run["p99_ms"], run["p99_ms_all"],
                     run["req_per_s"], run["sold"], run["stock"], run["oversold"], run["errors"].get("sold_out", 0),
                     run["errors"].get("shed", 0), unexpected_failures(run), cpu.get("server"), cpu.get("postgres")])
    cells = [[("-" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:,.1f}" if isinstance(v, float) else str(v))
              for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


# --- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench_flash", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--surge-url", default=None, help="base URL of a running Surge (default: start one with `surge up`)")
    p.add_argument("--surge-database-url", default=None, help="that Surge's Postgres DSN (required with --surge-url)")
    p.add_argument("--admin-token", default=None, help="that Surge's admin token (required with --surge-url)")
    p.add_argument("--surge-pid", type=int, default=None, help="root pid of that Surge's process tree, for CPU seconds")
    p.add_argument("--surge-replica-url", default=None,
                   help="that Surge's replica listener (SURGE_REPLICA_PORT), if on: measured as `surge`, the ingress as `surge-ingress`")
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS),
                   help="systems to measure (default: all there are; baseline and surge are always measured)")
    p.add_argument("--surge-env", action="append", default=[], metavar="KEY=VALUE",
                   help="setting for the Surge this bench starts, e.g. SURGE_API_REPLICAS=2 (repeatable)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--run-time", type=int, default=20, help="seconds per measured run")
    p.add_argument("--warmup", type=int, default=3, help="seconds of unrecorded warm-up sale per system (0: none)")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--stock", type=int, default=5000, help="units of the hot SKU per run")
    p.add_argument("--spawn-rate", type=float, default=None, help="users started per second (default: 10 x users)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.run_time < 1 or args.warmup < 0 or args.users < 1 or args.stock < 1:
        p.error("--rounds, --run-time, --users and --stock must be >= 1, --warmup >= 0")
    if args.surge_url:
        try:
            args.surge_url = check_loopback_url(args.surge_url)
        except ValueError as exc:
            p.error(str(exc))
        if not (args.surge_database_url and args.admin_token):
            p.error("--surge-url needs --surge-database-url and --admin-token")
    if args.surge_replica_url:
        try:
            args.surge_replica_url = check_loopback_url(args.surge_replica_url)
        except ValueError as exc:
            p.error(str(exc))
    args.systems = [s for s in SYSTEMS if s in {"baseline", "surge", *args.systems}]
    args.spawn_rate = args.spawn_rate or float(args.users * 10)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.surge_url:
        return compare(args)
    from loadtests.servers import surge_up

    with surge_up(dict(kv.split("=", 1) for kv in args.surge_env)) as surge:
        args.surge_url, args.surge_pid, args.surge_replica_url = surge.url, surge.pid, surge.replica_url
        args.surge_database_url, args.admin_token = surge.database_url, surge.admin_token
        return compare(args)


def compare(args: argparse.Namespace) -> int:
    code = code_version()  # taken before the runs: the server code may change while they go on
    try:
        wait_ok(args.surge_url + "/healthz", timeout_s=15)
    except TimeoutError as exc:
        print(f"Surge is not serving: {exc}", file=sys.stderr)
        return 2
    dsn = args.surge_database_url
    pg_pid = postgres_pid(dsn)
    baseline_port = free_port()
    baseline = start_baseline(baseline_port, dsn)
    systems = [s for s in args.systems if s != "surge-ingress" or args.surge_replica_url]
    per_round: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    try:
        targets = {
            "baseline": Target("baseline", f"http://{LOOPBACK}:{baseline_port}", baseline.pid, dsn),
            "surge": Target("surge", args.surge_replica_url or args.surge_url, args.surge_pid, dsn, args.admin_token),
            "surge-ingress": Target("surge-ingress", args.surge_url, args.surge_pid, dsn, args.admin_token),
        }

        def sku_for(system: str, label: str) -> str:
            return f"FLASH-{system}-{label}-{uuid.uuid4().hex[:8]}"

        if args.warmup:
            for system in systems:
                w = run_once(targets[system], sku_for(system, "warmup"), args, args.warmup, pg_pid)
                print(f"warm-up  {system:8} {w['purchases']} purchases, {w['requests']} answers, "
                      f"errors {w['errors']}", flush=True)
        for i in range(args.rounds):
            order = systems if i % 2 == 0 else systems[::-1]
            for system in order:
                r = run_once(targets[system], sku_for(system, f"r{i + 1}"), args, args.run_time, pg_pid)
                r["round"] = i + 1
                per_round[system].append(r)
                print(f"round {i + 1}/{args.rounds} {system:8} {r['purchases_per_s'] or 0:>9.1f} purchases/s over "
                      f"{r['selling_s']} s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  all p99 {r['p99_ms_all']} ms  "
                      f"{r['req_per_s']} req/s  sold {r['sold']}/{r['stock']}  oversold {r['oversold']}  "
                      f"mismatch {r['mismatch']}  errors {r['errors']}  cpu {r['cpu_s']}  "
                      f"locust cpu {r['loadgen_cpu_s']}/{r['wall_s']} s", flush=True)
    finally:
        stop(baseline)

    runs = [aggregate(s, per_round[s]) for s in ("surge", "surge-ingress", "baseline") if s in per_round]
    runs[0]["front_door"] = "replica listener" if args.surge_replica_url else "serve ingress"
    by_system = {r["system"]: r for r in runs}
    surge, base = by_system["surge"], by_system["baseline"]
    oversold_total = sum(r["oversold"] for r in runs)
    mismatches = [(s, r["round"], r["mismatch"]) for s in systems for r in per_round[s] if r["mismatch"] != 0]
    failures = sum(unexpected_failures(r) for r in runs)
    purchase_ratio = ratio(surge["purchases_per_s"], base["purchases_per_s"])
    target_met = bool(purchase_ratio is not None and purchase_ratio >= TARGET_RATIO
                      and surge["p99_ms"] is not None and surge["p99_ms"] <= TARGET_P99_MS and oversold_total == 0)
    summary = {
        "surge_vs_baseline_purchases_per_s": purchase_ratio,
        "surge_p99_ms": surge["p99_ms"],
        "oversold_total": oversold_total,
        "target": TARGET_TEXT,
        "target_met": target_met,
        "surge_vs_baseline_purchases_per_s_by_round": [
            ratio(s["purchases_per_s"], b["purchases_per_s"]) for s, b in zip(per_round["surge"], per_round["baseline"])
        ],
        "surge_vs_surge_ingress_purchases_per_s": ratio(surge["purchases_per_s"], by_system["surge-ingress"]["purchases_per_s"])
        if "surge-ingress" in by_system else None,
        "count_mismatches": [{"system": s, "round": n, "database_minus_client": m} for s, n, m in mismatches],
        "unexpected_failures": failures,
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "stock_per_run": args.stock,
        "run_time_s": args.run_time,
        "rounds": args.rounds,
        "code": code,
    }
    command = current_command()
    if args.admin_token:  # a results file is committed; never record a token in it
        command = command.replace(args.admin_token, "<admin-token>")
    path = write_results(BENCH, runs, summary, command=command, code=code)
    print()
    print_table(runs)
    print()
    print_results(path)
    print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    print(f"surge/baseline purchases/s = {purchase_ratio}; surge p99 = {surge['p99_ms']} ms; "
          f"oversold = {oversold_total}; target ({TARGET_TEXT}) {'MET' if target_met else 'NOT met'}")
    all_runs = [r for rs in per_round.values() for r in rs]
    busy = [r for r in all_runs if r["loadgen_cpu_s"] >= LOADGEN_BUSY * r["wall_s"] or r["loadgen_warnings"]]
    if busy:
        print(f"WARNING: Locust used >= {LOADGEN_BUSY:.0%} of a core or warned about its CPU in {len(busy)} run(s); "
              "the faster system may be load-generator bound", file=sys.stderr)
    status = 0
    if oversold_total:
        print(f"FAILED: {oversold_total} units oversold", file=sys.stderr)
        status = 1
    if failures:
        print(f"FAILED: {failures} unexpected answers; see 'errors' in the results file", file=sys.stderr)
        status = 1
    if mismatches:
        print(f"FAILED: database and client counts disagree: {summary['count_mismatches']}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
