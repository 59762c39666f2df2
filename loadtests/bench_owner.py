"""One owner's durable throughput: InventoryShard group commit vs one hot Postgres row.

    python -m loadtests.bench_owner [--seconds 10] [--concurrency 64] [--batch 50]

Starts a Surge (`surge up`), then, from this process as a Ray driver, keeps `--concurrency` calls
of `reserve_many` (`--batch` one-unit reservations each, as replicas coalesce them) in flight at
one shard for `--seconds`; every answered reservation is durable (committed before the answer).
Then the same number of asyncpg connections run `UPDATE ... SET stock = stock - 1 WHERE sku = $1
AND stock >= 1` on one row for as long. Interleaved: hot row, owner, hot row, owner.
Writes loadtests/results/owner.json with `ops_per_s` per system and their ratio.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import asyncpg
import ray

from actors.directory import ActorDirectory, OwnerConfig
from actors.routing import shard_for
from actors.settings import ActorSettings
from cluster.local import connect_ray
from loadtests.results import print_results, write_results
from loadtests.servers import surge_up


async def owner_run(directory: ActorDirectory, seconds: float, concurrency: int, batch: int) -> dict:
    sku = f"OWNER-{uuid.uuid4().hex[:8]}"
    shard = shard_for(sku, directory.shard_count("inventory"))
    units = 10**9
    await directory.call("inventory", shard, "upsert_skus", [{"sku": sku, "on_hand": units}])
    done = 0
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def caller(n: int) -> None:
        nonlocal done
        i = 0
        while time.monotonic() < stop_at:
            cmds = [{"reservation_id": f"{sku}-{n}-{i}-{k}", "owner": "bench", "lines": [[sku, 1]], "ttl_s": 3600}
                    for k in range(batch)]
            i += 1
            t = time.perf_counter()
            answers = await directory.call("inventory", shard, "reserve_many", cmds)
            latencies.append(time.perf_counter() - t)
            done += sum(a["ok"] for a in answers)

    started = time.monotonic()
    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"ops": done, "ops_per_s": round(done / elapsed, 1), "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2), "calls": len(latencies)}


async def hot_row_run(dsn: str, seconds: float, concurrency: int) -> dict:
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    await pool.execute("create table if not exists bench_hot_row (sku text primary key, stock bigint not null)")
    sku = f"HOT-{uuid.uuid4().hex[:8]}"
    await pool.execute("insert into bench_hot_row values ($1, $2)", sku, 10**9)
    done = 0
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            ok = await pool.fetchval("update bench_hot_row set stock = stock - 1 where sku = $1 and stock >= 1 returning stock", sku)
            latencies.append(time.perf_counter() - t)
            done += ok is not None

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    await pool.close()
    latencies.sort()
    return {"ops": done, "ops_per_s": round(done / elapsed, 1), "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2)}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench_owner", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    with surge_up() as surge:
        connect_ray(json.loads((surge.data_dir / "run.json").read_text()), ActorSettings().namespace)
        directory = ActorDirectory(OwnerConfig(database_url=surge.database_url, redis_url=None, settings=ActorSettings()))
        rounds: dict[str, list[dict]] = {"hot_row": [], "owner": []}
        for i in range(args.rounds):
            rounds["hot_row"].append(asyncio.run(hot_row_run(surge.database_url, args.seconds, args.concurrency)))
            rounds["owner"].append(asyncio.run(owner_run(directory, args.seconds, args.concurrency, args.batch)))
            print(f"round {i + 1}: hot row {rounds['hot_row'][-1]['ops_per_s']:,.0f} ops/s, "
                  f"owner {rounds['owner'][-1]['ops_per_s']:,.0f} ops/s", flush=True)
        ray.shutdown()
    runs = []
    for system, rs in rounds.items():
        runs.append({"system": system, "ops_per_s": round(sum(r["ops_per_s"] for r in rs) / len(rs), 1),
                     "req_per_s": round(sum(r["ops_per_s"] for r in rs) / len(rs), 1),
                     "p50_ms": max(r["p50_ms"] for r in rs), "p99_ms": max(r["p99_ms"] for r in rs), "rounds": rs})
    by = {r["system"]: r for r in runs}
    summary = {"owner_vs_hot_row_ops_per_s": round(by["owner"]["ops_per_s"] / by["hot_row"]["ops_per_s"], 2),
               "concurrency": args.concurrency, "batch": args.batch, "seconds": args.seconds,
               "note": "owner latencies are per reserve_many call of `batch` reservations; hot-row per UPDATE"}
    path = write_results("owner", runs, summary)
    print_results(path)


if __name__ == "__main__":
    main()
