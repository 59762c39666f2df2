"""Search over a seeded catalog through the HTTP API: latency cold (cache missed) and warm (cached).

    python -m loadtests.bench_search [--products 100000] [--cold 400] [--warm 2000] [--concurrency 1]
        [--compare N] [--explain] [--surge-url URL --surge-data-dir DIR] [--before-url URL]

Contract:
- Without ``--surge-url`` a whole Surge is started (``surge_up``: temporary data dir, free loopback
  ports), ``surge seed --products N`` fills it (timed: ``seed_s``), and it is stopped at the end.
  With it, that running Surge is used as it is (its data dir locates its database and Valkey).
  The started Surge has the per-address `search` rate limit lifted (one client asks for everyone).
- Queries are ``GET /search`` with words from the seed's vocabulary: single words, two words,
  misspellings (trigram path), category filters, price ranges, in-stock and attribute filters,
  every sort, pages 1-3, in a fixed pseudo-random mix (``--seed``).
- ``cold``: before each request the listings version key is bumped in Valkey (what a product event
  does), so every answer is computed by PostgreSQL (asserted from ``X-Cache: miss``).
  ``warm``: every query of the mix is asked once unrecorded, then requests are drawn from the same
  mix (asserted from ``X-Cache: hit``).
- ``--concurrency`` closed-loop clients (default 1: latency, not throughput). Latencies are wall
  time per request on the client, in ms. A run's figures: ``p50_ms``, ``p95_ms``, ``p99_ms``,
  ``max_ms``, ``req_per_s``, ``requests``, ``failures`` (non-200), ``cache`` (X-Cache counts),
  ``products`` (active products searched).
- ``--compare N``: then N cold searches through the search backend in this process, the code path
  before the one-round-trip search pool (a transaction setting work_mem and plan_cache_mode on the
  shared pool: BEGIN, SET LOCAL, query, COMMIT) against the current one (``create_search_pool``),
  in turns on the same database (runs ``cold-backend-before`` / ``-after``, their ratios and the
  count of unequal answers in ``summary.before_after``). The 1-minute load average is recorded as each
  phase starts (``summary.load_average_1m``): the box is shared.
- ``--before-url URL``: another Surge, running the code before a change on the same database and
  Valkey (``DATABASE_URL`` / ``REDIS_URL``); every cold and warm request is then asked of both, in
  turns (this one first on even requests, the other first on odd ones), so that the box's load
  falls on both alike: runs ``cold-before`` / ``warm-before`` and the ratios in
  ``summary.http_before_after``. (With concurrency 1 only.)
- Writes ``loadtests/results/search.json`` (runs ``cold`` and ``warm``), prints it with the command,
  and the slowest cold query with its EXPLAIN ANALYZE when ``--explain``. Exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from loadtests.results import current_command, print_results, write_results

if TYPE_CHECKING:
    from storage.search.base import SearchQuery

BENCH = "search"
TARGET = {"warm_p95_ms": 20.0, "cold_p95_ms": 50.0}
WORDS = ["lamp", "kettle", "headphones", "tent", "boot", "sweater", "speaker", "keyboard", "monitor", "helmet",
         "rug", "blender", "lantern", "hoodie", "sandal", "wireless", "waterproof", "cotton", "leather", "coffee",
         "running", "camping", "ergonomic", "steel", "wool", "portable", "bluetooth", "cozy", "gaming", "summer"]
PHRASES = ["wireless headphones", "running shoe", "table lamp", "camping stove", "wool rug", "hiking boot",
           "frying pan", "bike light", "throw blanket", "leather boot", "cotton t-shirt", "gaming keyboard"]
TYPOS = ["hedphones", "lantren", "kettel", "sweatr", "keybord", "helmt", "blendr", "sandl"]
CATEGORIES = ["apparel", "shoes", "running-shoes", "electronics", "audio", "headphones", "home", "kitchen",
              "lighting", "outdoors", "camping", "tents", "cycling"]
SORTS = ["relevance", "relevance", "relevance", "price_asc", "price_desc", "newest", "rating"]
PRICES = [(0, 2500), (2500, 5000), (5000, 10000), (10000, 25000), (25000, None)]


def query_mix(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.random()
        params: dict[str, Any] = {}
        if kind < 0.45:
            params["q"] = rng.choice(WORDS)
        elif kind < 0.65:
            params["q"] = rng.choice(PHRASES)
        elif kind < 0.75:
            params["q"] = rng.choice(TYPOS)
        elif kind < 0.9:
            params["category"] = rng.choice(CATEGORIES)
        else:
            params["q"] = rng.choice(WORDS)
            params["category"] = rng.choice(CATEGORIES)
        if rng.random() < 0.25:
            lo, hi = rng.choice(PRICES)
            params["price_min"] = lo
            if hi:
                params["price_max"] = hi
        if rng.random() < 0.2:
            params["in_stock"] = "true"
        if rng.random() < 0.1:
            params["attr"] = f"color:{rng.choice(['Black', 'White', 'Red', 'Blue', 'Navy'])}"
        params["sort"] = rng.choice(SORTS)
        params["page"] = rng.choice([1, 1, 1, 2, 3])
        out.append(params)
    return out


def to_query(params: dict[str, Any], tree) -> SearchQuery:
    """The SearchQuery the API builds from these parameters (category slug -> its subtree)."""
    from storage.search.base import SearchQuery, parse_attribute_filters, subtree_ids

    cat = params.get("category")
    return SearchQuery(q=params.get("q", ""), sort=params["sort"], page=params["page"], category=cat,
                       category_ids=subtree_ids(tree.by_slug[cat], tree.parents) if cat else None,
                       price_min=params.get("price_min"), price_max=params.get("price_max"),
                       in_stock=True if params.get("in_stock") else None,
                       attributes=parse_attribute_filters([params["attr"]]) if "attr" in params else ())


def summarise(latencies: list[float]) -> dict[str, Any]:
    latencies = sorted(latencies)
    return {"requests": len(latencies), "failures": 0,
            "req_per_s": round(1000 / statistics.fmean(latencies), 1), "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99), "max_ms": round(latencies[-1], 2),
            "mean_ms": round(statistics.fmean(latencies), 2)}


async def compare_paths(database: str, queries: list[dict[str, Any]], requests: int) -> tuple[list[dict], dict]:
    """The search backend before this change (`PostgresBackend(pool)`: each search a transaction
    that sets its settings, four round trips) and after (on `create_search_pool`: one), on the same
    database, query by query in turns (before, after, after, before, ...) so that the box's load
    falls on both alike. Every pair of answers must be equal (counted in `mismatches`).
    No HTTP and no cache: what PostgreSQL and the backend's Python cost per cold search."""
    from storage.catalog_store import CategorySource, load_categories
    from storage.pool import create_pool
    from storage.search.postgres import PostgresBackend, create_search_pool

    pool = await create_pool(database, min_size=1, max_size=2)
    after = None
    try:
        async with pool.acquire() as conn:
            tree = await load_categories(conn)
        categories = CategorySource(pool)
        after = PostgresBackend(pool, categories, search_pool=await create_search_pool(database, max_size=1))
        paths = {"before": PostgresBackend(pool, categories), "after": after}
        times: dict[str, list[float]] = {name: [] for name in paths}
        mismatches = 0
        for i in range(requests):
            query = to_query(queries[i % len(queries)], tree)
            answers = {}
            for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
                t0 = time.perf_counter()
                answers[name] = (await paths[name].search(query)).to_dict()
                times[name].append((time.perf_counter() - t0) * 1000)
            mismatches += answers["before"] != answers["after"]
    finally:
        if after is not None:
            await after.close()
        await pool.close()
    runs = [{"system": f"cold-backend-{name}", **summarise(ms)} for name, ms in times.items()]
    return runs, {"mismatches": mismatches, **ratios(runs[1], runs[0])}


def percentile(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    k = max(0, min(len(sorted_ms) - 1, round(p / 100 * len(sorted_ms) + 0.5) - 1))
    return round(sorted_ms[k], 2)


async def measure(urls: dict[str, str], queries: list[dict[str, Any]], requests: int, concurrency: int,
                  before=None) -> dict[str, dict[str, Any]]:
    """Each of `requests` queries asked of every Surge in `urls` (name -> base URL), in turns when
    there are two; `before()` runs before each request. Figures per name."""
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    cache: dict[str, dict[str, int]] = {name: {} for name in urls}
    failures = dict.fromkeys(urls, 0)
    differing = 0  # requests whose answers from the Surges in `urls` were not equal
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    clients = {name: httpx.AsyncClient(base_url=url, timeout=30, limits=limits) for name, url in urls.items()}
    try:
        async def worker() -> None:
            nonlocal differing
            for i in counter:
                params = queries[i % len(queries)]
                answers = []
                for name in (list(clients) if i % 2 == 0 else list(clients)[::-1]):
                    if before is not None:
                        await before()
                    t0 = time.perf_counter()
                    r = await clients[name].get("/search", params=params)
                    latencies[name].append((time.perf_counter() - t0) * 1000)
                    if r.status_code != 200:
                        failures[name] += 1
                    how = r.headers.get("x-cache", "none")
                    cache[name][how] = cache[name].get(how, 0) + 1
                    if len(clients) > 1:  # compared only between two Surges
                        answers.append(r.json() if r.status_code == 200 else r.status_code)
                differing += any(a != answers[0] for a in answers)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients.values():
            await client.aclose()
    out = {}
    for name, ms in latencies.items():
        ms.sort()
        out[name] = {"requests": len(ms), "failures": failures[name],
                     "req_per_s": round(len(ms) / elapsed, 1) if len(urls) == 1 else round(1000 / statistics.fmean(ms), 1),
                     "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
                     "max_ms": round(ms[-1], 2), "mean_ms": round(statistics.fmean(ms), 2), "cache": cache[name]}
        if len(urls) > 1:
            out[name]["answers_differing"] = differing
    return out


def ratios(after: dict[str, Any], before: dict[str, Any]) -> dict[str, float]:
    return {f"{k}_after_over_before": round(after[k] / before[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms")}


def seed(data_dir: Path, products: int) -> float:
    env = {**os.environ, "SURGE_DATA_DIR": str(data_dir), "SURGE_LOG_LEVEL": "WARNING"}
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "surge"), "seed", "--products", str(products)], env=env,
                   check=True)
    return round(time.perf_counter() - t0, 1)


async def run_bench(url: str, run: dict[str, Any], args) -> tuple[list[dict], dict]:
    import asyncpg
    import redis.asyncio as aioredis

    from storage.catalog_cache import LISTINGS_VERSION

    from storage.pool import _init_connection

    conn = await asyncpg.connect(run["database"])
    await _init_connection(conn)
    products = await conn.fetchval("select count(*) from products where status = 'active'")
    redis = aioredis.Redis.from_url(run["redis"])
    queries = query_mix(args.queries, args.seed)

    async def bump() -> None:
        await redis.incr(LISTINGS_VERSION)

    urls = {"after": url, **({"before": args.before_url} if args.before_url else {})}
    load = [round(os.getloadavg()[0], 1)]  # the 1-minute load average as each phase starts, and at the end
    # one unrecorded pass so both runs see warm PostgreSQL buffers and warm replicas
    await measure(urls, queries, min(len(queries), 100), 1, before=bump)
    cold = await measure(urls, queries, args.cold, args.concurrency, before=bump)
    load.append(round(os.getloadavg()[0], 1))
    await measure(urls, queries, len(queries), 1)  # fill the cache with every query of the mix
    warm = await measure(urls, queries, args.warm, args.concurrency)
    load.append(round(os.getloadavg()[0], 1))
    explain = None
    if args.explain:
        from storage.catalog_store import load_categories
        from storage.search.postgres import build_listing_sql, build_search_sql, set_local_sql, uses_facet_cells

        tree = await load_categories(conn)
        timed = []
        for params in queries[:60]:
            q = to_query(params, tree)
            sql, qargs = build_listing_sql(q) if uses_facet_cells(q) else build_search_sql(q)
            async with conn.transaction():
                await conn.execute(set_local_sql())
                t0 = time.perf_counter()
                await conn.fetch(sql, *qargs)
                timed.append(((time.perf_counter() - t0) * 1000, sql, qargs, params))
        ms, sql, qargs, params = max(timed, key=lambda t: t[0])
        async with conn.transaction():
            await conn.execute(set_local_sql())
            plan = await conn.fetch("explain (analyze, buffers) " + sql, *qargs)
        explain = {"params": params, "ms": round(ms, 2), "plan": [r[0] for r in plan]}
    await conn.close()
    await redis.aclose()
    runs = [{"system": "cold", "products": products, "concurrency": args.concurrency, **cold["after"]},
            {"system": "warm", "products": products, "concurrency": args.concurrency, **warm["after"]}]
    if args.before_url:
        runs += [{"system": f"{phase}-before", "products": products, "concurrency": args.concurrency, **figures["before"]}
                 for phase, figures in (("cold", cold), ("warm", warm))]
    compared = None
    if args.compare:
        backend_runs, compared = await compare_paths(run["database"], queries, args.compare)
        runs += [{**r, "products": products} for r in backend_runs]
        load.append(round(os.getloadavg()[0], 1))
    summary = {"target": "p95 <= 20 ms warm, <= 50 ms cold (100,000 products)",
               "warm_p95_met": warm["after"]["p95_ms"] <= TARGET["warm_p95_ms"],
               "cold_p95_met": cold["after"]["p95_ms"] <= TARGET["cold_p95_ms"], "distinct_queries": len(queries),
               "load_average_1m": load}
    if args.before_url:
        summary["http_before_after"] = {phase: ratios(figures["after"], figures["before"])
                                        for phase, figures in (("cold", cold), ("warm", warm))}
    if compared:
        summary["before_after"] = compared
    if explain:
        summary["slowest_sql_sample"] = {"params": explain["params"], "ms": explain["ms"]}
        print("\n".join(explain["plan"]))
    return runs, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--products", type=int, default=100_000)
    p.add_argument("--cold", type=int, default=400, help="recorded cold requests")
    p.add_argument("--warm", type=int, default=2000, help="recorded warm requests")
    p.add_argument("--queries", type=int, default=300, help="distinct queries in the mix")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--compare", type=int, default=0, metavar="N",
                   help="also run N cold searches through the backend before and after this change, in turns")
    p.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the slowest sampled query")
    p.add_argument("--surge-url", default=None)
    p.add_argument("--surge-data-dir", default=None, help="data dir of the running Surge (with --surge-url)")
    p.add_argument("--before-url", default=None,
                   help="a Surge running the code before a change on the same database and Valkey: asked in turns")
    args = p.parse_args(argv)
    if args.before_url and args.concurrency != 1:
        p.error("--before-url measures in turns with one client: --concurrency 1")
    command = current_command()
    extra: dict[str, Any] = {}
    if args.surge_url:
        run = json.loads((Path(args.surge_data_dir) / "run.json").read_text())
        runs, summary = asyncio.run(run_bench(args.surge_url, run, args))
    else:
        from loadtests.servers import surge_up

        # one client address asks far more than a shopper may: lift the per-address search limit
        with surge_up({"SURGE_RATE_LIMITS": json.dumps({"search": "1000000/second"})}) as surge:
            extra["seed_s"] = seed(surge.data_dir, args.products)
            run = json.loads((surge.data_dir / "run.json").read_text())
            runs, summary = asyncio.run(run_bench(surge.url, run, args))
    summary.update(extra)
    path = write_results(BENCH, runs, summary, command=command)
    print_results(path)
    return 1 if (any(r["failures"] or r.get("answers_differing") for r in runs)
                 or summary.get("before_after", {}).get("mismatches")) else 0


if __name__ == "__main__":
    sys.exit(main())
