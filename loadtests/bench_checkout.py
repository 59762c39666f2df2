"""End-to-end checkout: guest cart to paid order through the HTTP API, paying at localstripe.

    python -m loadtests.bench_checkout [--users 8 [--users 24 ...]] [--run-time 30] [--warmup 5]
        [--pace 0] [--coupon-share 0.5] [--three-ds-share 0] [--products 4] [--surge-env KEY=VALUE ...]
        [--localstripe embedded [--localstripe memory]]

Contract:
- A whole Surge is started (``surge_up``: temporary data dir, free loopback ports, embedded Postgres,
  Valkey, localstripe, Ray) and stopped by pid at the end, however the bench ends; one Surge per
  ``--localstripe`` value, one after the other: ``embedded`` is the localstripe ``surge up`` starts
  (its state pickled to disk on every write, see ``cluster/embedded.py``); ``memory`` is a
  localstripe this bench starts on a free 127.0.0.1 port with that persistence switched off (and
  stops by pid), handed to Surge as ``STRIPE_API_BASE`` with a webhook endpoint and secret this
  bench registers, so the two show what the fake's own bookkeeping costs.
- Setup: ``--products`` products with one variant each (rows in Postgres, as the integration tests
  make them, prices 5.00-25.00 USD) plus the demo's ``SAMPLE-1``, each put at 1,000,000 units with
  the admin API, so stock never runs out.
- Load (``loadtests/locustfiles/checkout.py``, one Locust process): every shopper adds 1-3 distinct
  lines of 1-2 units to a fresh guest cart, applies ``SAVE10`` with probability ``--coupon-share``,
  and submits checkout with a fresh ``Idempotency-Key`` and the 4242 card (or, with probability
  ``--three-ds-share``, the 3-D Secure card, passed at localstripe, after which only the
  ``payment_intent.succeeded`` webhook marks the order paid, observed by polling the order). No
  think time inside an order; ``--pace`` seconds between one user's orders. One unrecorded warm-up
  of ``--warmup`` seconds, then one measured run of ``--run-time`` seconds per ``--users`` value;
  every run is bounded in time (Locust's ``--run-time`` and the runner's hard timeout) and in count
  (``SURGE_BENCH_MAX_ORDERS``).
- An order is done when it is **paid**: for 4242 cards in the submit's own answer (201, status
  paid, after the PaymentIntent succeeded and the stock was committed); for 3-D Secure cards when a
  poll first shows it paid. ``cart_to_paid`` = that answer's arrival - sending of the first
  add-to-cart, per order, exact (not Locust's rounded histogram).
- The webhook: localstripe sends ``payment_intent.succeeded`` for every paid intent (about 1 s
  later, by its own design); Surge records it in ``stripe_events`` in the transaction that applies
  it. After each run the bench waits (bounded, ``WEBHOOK_WAIT_S``) for every order's event and
  reports ``cart_to_webhook`` (event recorded - first add-to-cart) and ``webhook_after_paid``
  (event recorded - ``orders.paid_at``), both from the same machine's clocks.
- Figures per run: ``orders_per_min`` = paid orders / (last paid - first cart started) x 60;
  ``p50_ms``/``p99_ms``/``max_ms`` of cart_to_paid (all orders; per card under ``by_card``);
  ``req_per_s`` of all API answers; ``errors`` by kind (step and HTTP status); the database's count
  of paid bench orders vs the client's (``mismatch``); ``cpu_s`` of the Surge process tree during
  the run, split into ``postgres``, ``localstripe``, ``valkey``, ``api`` (Serve replicas and
  proxies), ``owners`` (cart, inventory, order actors), ``ray`` (Ray's own daemons and other
  workers) and ``other``; the box's load average before the run (other engineers share it).
- Writes ``loadtests/results/checkout.json`` (bench ``checkout``): one run per ``--users`` value
  (``system`` = ``surge``), summary with the target (p99 cart_to_paid < 1 s) per run and ``code``
  (commit and changed files) and, with both localstripes, ``memory_vs_embedded_orders_per_min``
  per users value. Prints the command that made the figures.
- Exit status 2 if Surge does not serve, 1 if any answer was unexpected or the counts disagree
  (results are still written), else 0.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from loadtests.bench_flash import fetch, http_json, postgres_pid
from loadtests.bench_trivial import ratio
from loadtests.results import code_version, current_command, print_results, write_results
from loadtests.runner import check_loopback_url, run_locust
from loadtests.servers import REPO_ROOT, free_port, stop, wait_ok

LOCUSTFILE = "checkout.py"
BENCH = "checkout"
TARGET_P99_MS = 1000.0
TARGET_TEXT = "p99 cart -> paid < 1 s"
STOCK = 1_000_000
WEBHOOK_WAIT_S = 15.0
MAX_ORDERS_PER_RUN = 100_000


# --- a localstripe without persistence ---------------------------------------------------------

_MEMORY_LOCALSTRIPE = """import socket, sys
from aiohttp import web
from localstripe import resources, server
# memory only: the stock Store pickles everything to disk on every write
resources.Store.try_load_from_disk = lambda self: None
resources.Store.dump_to_disk = lambda self: None
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
web.run_app(server.app, sock=sock, access_log=None, shutdown_timeout=2)
"""


@contextlib.contextmanager
def memory_localstripe() -> Iterator[str]:
    """localstripe on a free loopback port, state in memory only; yields its URL, stops it by pid."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _MEMORY_LOCALSTRIPE, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"localstripe exited ({proc.returncode})")
            try:
                urllib.request.urlopen(f"{url}/v1/balance", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # 401 without a key: it serves
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("localstripe did not serve within 30 s") from None
                time.sleep(0.2)
        yield url
    finally:
        stop(proc)


@contextlib.contextmanager
def surge_with(localstripe: str, surge_env: dict[str, str]):
    """A Surge on the embedded localstripe, or on a memory-only one with its webhook registered here."""
    from loadtests.servers import surge_up

    if localstripe == "embedded":
        with surge_up(surge_env) as surge:
            yield surge
        return
    from cluster.local import register_localstripe_webhook

    secret = "whsec_bench_" + uuid.uuid4().hex
    with memory_localstripe() as stripe_url, \
            surge_up({**surge_env, "STRIPE_API_BASE": stripe_url, "SURGE_STRIPE_WEBHOOK_SECRET": secret}) as surge:
        register_localstripe_webhook(stripe_url, "surge", f"{surge.url}/webhooks/stripe", secret)
        yield surge


# --- setup ---------------------------------------------------------------------------------------

def make_products(dsn: str, url: str, token: str, n: int) -> list[str]:
    """``n`` fresh products (one variant each) plus SAMPLE-1, all at STOCK units; returns their SKUs."""
    import asyncio

    import asyncpg

    async def insert() -> list[str]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            skus = []
            for i in range(n):
                tag = uuid.uuid4().hex[:10]
                sku = f"BENCH-{tag}".upper()
                pid = await conn.fetchval("insert into products (slug, name, status) values ($1, $2, 'active') returning id",
                                          f"bench-{tag}", f"Bench product {i + 1}")
                await conn.execute("insert into variants (sku, product_id, name, price_minor) values ($1, $2, 'Default', $3)",
                                   sku, pid, 500 * (i % 5 + 1))
                skus.append(sku)
            return skus
        finally:
            await conn.close()

    skus = asyncio.run(insert()) + ["SAMPLE-1"]
    for sku in skus:
        status, body = http_json("PUT", f"{url}/admin/inventory/{sku}", {"on_hand": STOCK}, token)
        if status != 200:
            raise RuntimeError(f"could not stock {sku}: {status} {body}")
    return skus


# --- CPU of the Surge tree, by part --------------------------------------------------------------

def _part(proc: psutil.Process) -> str:
    try:
        title = " ".join(proc.cmdline())[:300]
    except psutil.Error:
        return "other"
    if "postgres" in title or "postmaster" in title:
        return "postgres"
    if "localstripe" in title:
        return "localstripe"
    if "valkey" in title or "redis-server" in title:
        return "valkey"
    if any(s in title for s in ("ServeReplica", "ProxyActor", "haproxy", "ServeController")):
        return "api"
    if any(s in title for s in ("CartShard", "InventoryShard", "OrderPipeline", "EventRelay", "Notifier", "Analytics")):
        return "owners"
    if "ray" in title:
        return "ray"
    return "other"


def cpu_snapshot(*root_pids: int) -> dict[int, tuple[str, float]]:
    out: dict[int, tuple[str, float]] = {}
    procs: list[psutil.Process] = []
    for root_pid in root_pids:
        try:
            root = psutil.Process(root_pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = (_part(p), t.user + t.system)
        except psutil.Error:
            continue
    return out


def cpu_by_part(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds between two snapshots per part (a process born in between counts from birth;
    one that died in between is lost: the total of the runner's sampler is the check)."""
    parts: dict[str, float] = {}
    for pid, (part, used) in after.items():
        parts[part] = parts.get(part, 0.0) + used - before.get(pid, (part, 0.0))[1]
    return {k: round(v, 2) for k, v in sorted(parts.items())}


# --- figures -------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of exact values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)


def latency(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": percentile(values, 0.5), "p90_ms": percentile(values, 0.9),
            "p99_ms": percentile(values, 0.99), "max_ms": round(max(values), 1) if values else None,
            "mean_ms": round(statistics.fmean(values), 1) if values else None}


def webhook_times(dsn: str, numbers: list[str], deadline_s: float) -> dict[str, dict[str, float | None]]:
    """Per order: paid_at (database) and when its payment_intent.succeeded was recorded, waiting
    until every order has one or the deadline passes."""
    query = """select o.number, extract(epoch from o.paid_at)::float8 as paid_at, o.status,
                      (select extract(epoch from min(e.received_at))::float8 from stripe_events e
                        where e.object_id = o.payment_intent_id and e.type = 'payment_intent.succeeded') as webhook_at
               from orders o where o.number = any($1::text[])"""
    deadline = time.monotonic() + deadline_s
    while True:
        rows = {r["number"]: r for r in fetch(dsn, query, numbers)} if numbers else {}
        if all(r["webhook_at"] is not None for r in rows.values()) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def run_once(args: argparse.Namespace, users: int, seconds: int, skus: list[str], pg_pid: int | None,
             stripe_url: str) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="surge-checkout-") as tmp:
        out = Path(tmp) / "tally.json"
        roots = [args.surge_pid] + ([args.stripe_pid] if getattr(args, "stripe_pid", None) else [])
        before = cpu_snapshot(*roots)
        r = run_locust(LOCUSTFILE, args.surge_url, users, float(users * 10), seconds,
                       extra_env={"SURGE_BENCH_SKUS": ",".join(skus), "SURGE_BENCH_OUT": str(out),
                                  "SURGE_BENCH_COUPON_SHARE": str(args.coupon_share),
                                  "SURGE_BENCH_3DS_SHARE": str(args.three_ds_share),
                                  "SURGE_BENCH_PACE_S": str(args.pace), "SURGE_BENCH_STRIPE_URL": stripe_url,
                                  "SURGE_BENCH_MAX_ORDERS": str(MAX_ORDERS_PER_RUN)},
                       server_pids=dict(zip(("surge", "localstripe"), roots)), reset_stats=False)
        after = cpu_snapshot(*roots)
        if not out.exists():
            raise RuntimeError(f"the Locust process wrote no tally ({out}); errors: {r['errors']}")
        tally = json.loads(out.read_text())

    orders = tally["orders"]  # [number, card, started, paid, submit_answered, lines, coupon]
    numbers = [o[0] for o in orders]
    db = webhook_times(args.surge_database_url, numbers, WEBHOOK_WAIT_S)
    paid_in_db = sum(1 for n in numbers if n in db and db[n]["status"] == "paid")
    cart_to_paid = [(o[3] - o[2]) * 1000 for o in orders]
    by_card = {card: latency([(o[3] - o[2]) * 1000 for o in orders if o[1] == card]) for card in ("4242", "3ds")
               if any(o[1] == card for o in orders)}
    to_webhook = [(db[o[0]]["webhook_at"] - o[2]) * 1000 for o in orders if o[0] in db and db[o[0]]["webhook_at"]]
    after_paid = [(db[n]["webhook_at"] - db[n]["paid_at"]) * 1000 for n in numbers
                  if n in db and db[n]["webhook_at"] and db[n]["paid_at"]]
    window = (max(o[3] for o in orders) - min(o[2] for o in orders)) if orders else None
    final = tally.get("stats") or {}
    everything = final.get("Aggregated") or {k: r[k] for k in ("requests", "failures", "req_per_s", "p50_ms", "p99_ms")}
    errors = dict(tally["errors"])
    missing_webhooks = len(numbers) - len(to_webhook)
    if missing_webhooks:
        errors[f"webhook not applied within {WEBHOOK_WAIT_S:.0f} s after the run"] = missing_webhooks
    lat = latency(cart_to_paid)
    total_cpu = round(sum(r["cpu_s"].values()), 2)  # Surge's tree, plus a localstripe started outside it
    return {
        "system": "surge",
        "users": users,
        "orders_per_min": round(len(orders) / window * 60, 1) if window else None,
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "p90_ms": lat["p90_ms"],
        "max_ms": lat["max_ms"],
        "mean_ms": lat["mean_ms"],
        "req_per_s": everything.get("req_per_s"),
        "orders": len(orders),
        "orders_paid_in_db": paid_in_db,
        "mismatch": paid_in_db - len(orders),
        "by_card": by_card,
        "cart_to_webhook": latency(to_webhook),
        "webhook_after_paid": latency(after_paid),
        "errors": errors,
        "requests": everything.get("requests"),
        "failures": everything.get("failures"),
        "by_name": {k: v for k, v in final.items() if k != "Aggregated"},
        "locust_errors": r["errors"],
        "cpu_s": {"surge_total": total_cpu, **cpu_by_part(before, after)},
        "cpu_cores_used": round(total_cpu / window, 2) if total_cpu and window else None,
        "loadgen_cpu_s": r["loadgen_cpu_s"],
        "loadgen_warnings": sorted(set(r["loadgen_warnings"])),
        "load_average_before": load_before,
        "wall_s": r["wall_s"],
        "selling_s": round(window, 2) if window else None,
    }


def print_table(runs: list[dict[str, Any]]) -> None:
    cols = ("localstripe", "users", "orders_per_min", "p50_ms", "p99_ms", "max_ms", "webhook_p50", "webhook_p99", "errors", "cpu_surge",
            "cores")
    rows = []
    for run in runs:
        rows.append([run["localstripe"], run["users"], run["orders_per_min"], run["p50_ms"], run["p99_ms"], run["max_ms"],
                     run["cart_to_webhook"]["p50_ms"], run["cart_to_webhook"]["p99_ms"], sum(run["errors"].values()),
                     run["cpu_s"]["surge_total"], run["cpu_cores_used"]])
    cells = [["-" if v is None else v if isinstance(v, str) else f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"
              for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


# --- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench_checkout", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, action="append", default=None,
                   help="concurrent shoppers of one measured run (repeatable: one run per value; default 8)")
    p.add_argument("--run-time", type=int, default=30, help="seconds per measured run")
    p.add_argument("--warmup", type=int, default=5, help="seconds of unrecorded warm-up (0: none)")
    p.add_argument("--pace", type=float, default=0.0, help="seconds a user waits between its orders")
    p.add_argument("--coupon-share", type=float, default=0.5, help="share of shoppers who apply SAVE10")
    p.add_argument("--three-ds-share", type=float, default=0.0,
                   help="share of shoppers paying with the 3-D Secure card (paid by the webhook)")
    p.add_argument("--products", type=int, default=4, help="fresh products to buy from (plus SAMPLE-1)")
    p.add_argument("--surge-env", action="append", default=[], metavar="KEY=VALUE",
                   help="setting for the Surge this bench starts, e.g. SURGE_API_REPLICAS=2 (repeatable)")
    p.add_argument("--localstripe", action="append", choices=("embedded", "memory"), default=None,
                   help="which localstripe Surge pays at (repeatable: one Surge each, in order; default embedded)")
    args = p.parse_args(argv)
    args.users = args.users or [8]
    args.localstripe = args.localstripe or ["embedded"]
    if min(args.users) < 1 or args.run_time < 1 or args.warmup < 0 or args.pace < 0 or args.products < 2:
        p.error("--users and --run-time must be >= 1, --warmup and --pace >= 0, --products >= 2")
    for share in (args.coupon_share, args.three_ds_share):
        if not 0 <= share <= 1:
            p.error("shares are between 0 and 1")
    return args


def measure(args: argparse.Namespace, variant: str, runs: list[dict[str, Any]]) -> int:
    """One Surge on the given localstripe: warm-up, then one run per users value (appended to runs)."""
    with surge_with(variant, dict(kv.split("=", 1) for kv in args.surge_env)) as surge:
        args.surge_url, args.surge_pid = check_loopback_url(surge.url), surge.pid
        args.surge_database_url, args.admin_token = surge.database_url, surge.admin_token
        try:
            wait_ok(args.surge_url + "/healthz", timeout_s=15)
        except TimeoutError as exc:
            print(f"Surge is not serving: {exc}", file=sys.stderr)
            return 2
        stripe_url = check_loopback_url(json.loads((surge.data_dir / "run.json").read_text())["stripe"])
        args.stripe_pid = None if variant == "embedded" else _listener_pid(stripe_url)
        pg_pid = postgres_pid(args.surge_database_url)
        skus = make_products(args.surge_database_url, args.surge_url, args.admin_token, args.products)
        if args.warmup:
            w = run_once(args, max(args.users), args.warmup, skus, pg_pid, stripe_url)
            print(f"[{variant} localstripe] warm-up: {w['orders']} orders, p99 {w['p99_ms']} ms, errors {w['errors']}",
                  flush=True)
        for users in args.users:
            r = run_once(args, users, args.run_time, skus, pg_pid, stripe_url)
            r["localstripe"] = variant
            runs.append(r)
            print(f"[{variant} localstripe] users {users:>3}: {r['orders_per_min']} orders/min  cart->paid p50 "
                  f"{r['p50_ms']} ms  p99 {r['p99_ms']} ms  max {r['max_ms']} ms  cart->webhook p50 "
                  f"{r['cart_to_webhook']['p50_ms']} ms p99 {r['cart_to_webhook']['p99_ms']} ms  errors {r['errors']}  "
                  f"cpu {r['cpu_s']}  load {r['load_average_before']}", flush=True)
    return 0


def _listener_pid(url: str) -> int | None:
    """The pid listening on a loopback URL's port (the memory-only localstripe, for its CPU)."""
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    code = code_version()  # before the runs: the code may change while they go on
    runs: list[dict[str, Any]] = []
    for variant in args.localstripe:
        status = measure(args, variant, runs)
        if status:
            return status

    failures = sum(sum(r["errors"].values()) for r in runs)
    mismatches = [(r["users"], r["mismatch"]) for r in runs if r["mismatch"]]
    summary = {
        "target": TARGET_TEXT,
        "target_met": {f"{r['localstripe']} localstripe, {r['users']} users": r["p99_ms"] is not None
                       and r["p99_ms"] < TARGET_P99_MS for r in runs},
        "memory_vs_embedded_orders_per_min": {
            str(m["users"]): ratio(m["orders_per_min"], e["orders_per_min"])
            for e in runs if e["localstripe"] == "embedded" for m in runs
            if m["localstripe"] == "memory" and m["users"] == e["users"]} or None,
        "done_means": "paid: the submit's 201 for 4242 cards (intent succeeded, stock committed); for 3-D Secure "
                      "cards the first poll showing the order paid by localstripe's payment_intent.succeeded webhook",
        "webhook": "cart_to_webhook / webhook_after_paid: when stripe_events recorded the order's "
                   "payment_intent.succeeded (localstripe sends it about 1 s after the payment, by design)",
        "shared_box": "2 cores shared with other engineers' test runs at the same time (load_average_before per run)",
        "unexpected_answers": failures,
        "count_mismatches": [{"users": u, "database_minus_client": m} for u, m in mismatches],
        "run_time_s": args.run_time, "warmup_s": args.warmup, "pace_s": args.pace,
        "coupon_share": args.coupon_share, "three_ds_share": args.three_ds_share,
        "products": args.products + 1, "localstripes": args.localstripe, "surge_env": args.surge_env,
        "code": code,
    }
    path = write_results(BENCH, runs, summary, command=current_command(), code=code)
    print()
    print_table(runs)
    print()
    print_results(path)
    print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    status = 0
    if failures:
        print(f"FAILED: {failures} unexpected answers; see 'errors' in the results file", file=sys.stderr)
        status = 1
    if mismatches:
        print(f"FAILED: database and client counts of paid orders disagree: {mismatches}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
