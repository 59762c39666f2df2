"""The hub's garbage-collector pauses with its heap frozen (`realtime/heap.py`) against CPython's own
policy, through a connect storm and then churn while stock changes.

    python -m loadtests.bench_hub_gc [--clients 10000] [--churn-rate 100] [--churn-s 40] [--rounds 2]

Contract:
- No Surge. Each variant runs in a process of its own (this module, `--child`), one after the other
  and in alternating order over `--rounds` (`frozen`, `cpython`, then `cpython`, `frozen`, …), so
  neither inherits the other's heap. The child serves the hub as `realtime.server.run` does
  (`hub_server`, the hub's young-generation threshold, the `frozen` variant's `freeze_survivors`
  with the shipped settings) on a free 127.0.0.1 port, on uvloop, and times every cyclic GC pass
  (`gc.callbacks`).
- Storm: `--procs` client processes (`loadtests.ws_clients`, raw protocol) open `--clients` sockets
  in all and subscribe them to one product topic.
- Churn: for `--churn-s` seconds a churn process (`--churner`, the `websockets` client, a closing
  handshake each time, as a browser leaving) opens `--churn-rate` sockets a second, each
  subscribing to the product and closing after `--hold-s`; meanwhile the hub publishes a stock level
  every `--interval-s` to all subscribers.
- Figures per variant and phase: GC passes and their pauses (`gc_passes`, `full_passes`,
  `full_pause_ms` total, `max_pause_ms`, `pauses_over_100ms`), then the hub's RSS and frozen objects;
  for the churn phase, the delay from each publish to its receipt by the storm's clients (`p50_ms`,
  `p99_ms`, `max_ms`; a GC pause delays every socket's next frame) and `req_per_s` = frames received
  per second; and `cyclic_garbage`, the objects an unfreeze and a full collection then free (for
  `frozen`, what its freezes kept since the last reclaim). Every process started is stopped by
  pid; each bounds itself (`--max-seconds`). Writes `loadtests/results/hub_gc.json`.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from loadtests.bench_hub_pass import rnd
from loadtests.bench_realtime import percentile, raise_own_nofile
from loadtests.results import print_results, write_results
from cluster.embedded import stop_processes
from loadtests.servers import REPO_ROOT

TOPIC = "product:GC"
VARIANTS = ("frozen", "cpython")


class Pauses:
    """Every cyclic GC pass of this process: (generation, seconds), timed by the hub's own `GcPauses`."""

    def __init__(self) -> None:
        from realtime.heap import GcPauses

        self.passes: list[tuple[int, float]] = []
        self._timer = GcPauses(lambda generation, s: self.passes.append((generation, s)))

    def take(self) -> dict:
        passes, self.passes = self.passes, []
        ms = sorted(s * 1000 for _, s in passes)
        full = [s * 1000 for g, s in passes if g == 2]
        return {"gc_passes": len(passes), "full_passes": len(full), "full_pause_ms": rnd(sum(full)),
                "max_pause_ms": rnd(ms[-1] if ms else 0.0), "pauses_over_100ms": sum(1 for m in ms if m > 100)}


async def churn(url: str, rate: float, seconds: float, hold_s: float) -> None:
    """`rate` sockets a second for `seconds`, each subscribed to TOPIC and closed after `hold_s`."""
    from websockets.asyncio.client import connect

    async def one() -> None:
        try:
            async with connect(url, compression=None, ping_interval=None, open_timeout=20) as ws:
                await ws.send(json.dumps({"op": "subscribe", "topics": [TOPIC]}))
                await asyncio.sleep(hold_s)
        except Exception:  # a refused or cut socket is churn too
            pass
    tasks, started = set(), time.monotonic()
    k = 0
    while time.monotonic() - started < seconds:
        k += 1
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(max(0.0, started + k / rate - time.monotonic()))
    await asyncio.gather(*tasks)


def child_cpu_s(children: list[subprocess.Popen]) -> float:
    total = 0.0
    for child in children:
        try:
            t = psutil.Process(child.pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


async def variant(args: argparse.Namespace) -> dict:
    from realtime.heap import freeze_survivors
    from realtime.hub import Hub
    from realtime.server import hub_server
    from realtime.settings import HubSettings
    from storage.runtime import tune_gc

    settings = HubSettings()
    tune_gc(settings.gc_gen0_threshold)  # as the hub's main() does
    pauses = Pauses()
    hub = Hub()
    work = Path(tempfile.mkdtemp(prefix=f"hub-gc-{args.child}-"))
    me = psutil.Process()
    out: dict = {"system": args.child, "clients": args.clients}
    tasks = []
    if args.child == "frozen":
        tasks.append(asyncio.create_task(freeze_survivors(settings.hub_gc_freeze_s, settings.hub_gc_reclaim_s)))
    async with hub_server(hub, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        per = args.clients // args.procs
        children = [subprocess.Popen(
            [sys.executable, "-m", "loadtests.ws_clients", "--url", url, "--topic", TOPIC, "--n", str(per),
             "--out", str(work / f"p{i}"), "--compression", "none", "--max-seconds", str(args.max_seconds)],
            cwd=REPO_ROOT, start_new_session=True) for i in range(args.procs)]
        churner = None
        try:
            deadline = time.monotonic() + args.max_seconds / 2
            storm_began = time.monotonic()
            while not all((work / f"p{i}.ready.json").exists() for i in range(args.procs)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{args.child}: clients not connected within {args.max_seconds / 2:.0f} s")
                await asyncio.sleep(0.2)
            out["storm"] = {**pauses.take(), "seconds": rnd(time.monotonic() - storm_began),
                            "connected": hub.connected, "rss_mb": rnd(me.memory_info().rss / 2**20),
                            "frozen": gc.get_freeze_count()}
            churner = subprocess.Popen(
                [sys.executable, "-m", "loadtests.bench_hub_gc", "--churner", url, "--churn-rate", str(args.churn_rate),
                 "--churn-s", str(args.churn_s), "--hold-s", str(args.hold_s)], cwd=REPO_ROOT, start_new_session=True)
            began, k = [], 0
            churn_began = time.monotonic()
            while time.monotonic() - churn_began < args.churn_s:
                began.append(time.time())
                hub.publish(TOPIC, {"available": k}, seq=k + 1)
                k += 1
                await asyncio.sleep(args.interval_s)
            churner.wait(args.hold_s + 60)
            await asyncio.sleep(2)  # the last frames arrive
            out["churn"] = {**pauses.take(), "seconds": rnd(time.monotonic() - churn_began),
                            "connected": hub.connected, "rss_mb": rnd(me.memory_info().rss / 2**20),
                            "frozen": gc.get_freeze_count(), "levels": k}
            # what only a full collection of the whole heap frees now: for `frozen`, cyclic garbage its
            # freezes kept (a leak until the next reclaim); for `cpython`, what its next full pass would find
            tracked = len(gc.get_objects()) + gc.get_freeze_count()
            gc.unfreeze()
            gc.collect()
            out["churn"]["cyclic_garbage"] = tracked - len(gc.get_objects())
        finally:
            stop_processes([c for c in (*children, churner) if c is not None], grace_s=30)
            for task in tasks:
                task.cancel()
    delays = []
    for i in range(args.procs):
        path = work / f"p{i}.json"
        if path.exists():
            doc = json.loads(path.read_text())
            delays += [(t - began[a]) * 1000 for a, t in zip(doc["available"], doc["t"]) if 0 <= a < len(began)]
    delays.sort()
    published = began[-1] - began[0] if len(began) > 1 else 0
    out.update({"p50_ms": rnd(percentile(delays, 0.5)), "p99_ms": rnd(percentile(delays, 0.99)),
                "max_ms": rnd(delays[-1] if delays else None), "frames": len(delays),
                "req_per_s": round(len(delays) / published, 1) if published > 0 else None})
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench_hub_gc", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=10_000)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--churn-rate", type=float, default=100, help="sockets opened (and later closed) a second")
    p.add_argument("--churn-s", type=float, default=40)
    p.add_argument("--hold-s", type=float, default=5, help="how long each churning socket stays open")
    p.add_argument("--interval-s", type=float, default=0.25, help="seconds between stock levels")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=300, help="bound of each variant's run")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--churner", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    raise_own_nofile()
    if args.churner:
        asyncio.run(churn(args.churner, args.churn_rate, args.churn_s, args.hold_s))
        return
    logging.getLogger("websockets.server").setLevel(logging.CRITICAL)  # clients leave without a closing handshake
    if args.child:
        import uvloop

        Path(args.out).write_text(json.dumps(uvloop.run(variant(args))))
        return
    runs = []
    order = [v for r in range(args.rounds) for v in (VARIANTS if r % 2 == 0 else VARIANTS[::-1])]
    for i, name in enumerate(order):
        out = Path(tempfile.mkdtemp(prefix="hub-gc-")) / "run.json"
        child = subprocess.Popen([sys.executable, "-m", "loadtests.bench_hub_gc", "--child", name, "--out", str(out),
                                  *(argv if argv is not None else sys.argv[1:])], cwd=REPO_ROOT, start_new_session=True)
        try:
            child.wait(args.max_seconds + 60)
        finally:
            stop_processes([child], grace_s=30)
        run = {**json.loads(out.read_text()), "round": i // 2 + 1}
        s, c = run["storm"], run["churn"]
        print(f"  {name} (round {run['round']}): storm {s['seconds']} s, {s['full_passes']} full GC passes "
              f"({s['full_pause_ms']} ms, max pause {s['max_pause_ms']} ms); churn {c['full_passes']} full passes "
              f"({c['full_pause_ms']} ms, max {c['max_pause_ms']} ms), frames p50/p99/max "
              f"{run['p50_ms']}/{run['p99_ms']}/{run['max_ms']} ms, rss {c['rss_mb']} MB, {c['connected']} connected, "
              f"cyclic garbage left {c['cyclic_garbage']}",
              flush=True)
        runs.append(run)

    def total(system: str, phase: str, key: str) -> float:
        return sum(r[phase][key] or 0 for r in runs if r["system"] == system)
    summary = {phase: {"full_pause_ms": {v: rnd(total(v, phase, "full_pause_ms")) for v in VARIANTS},
                       "pauses_over_100ms": {v: total(v, phase, "pauses_over_100ms") for v in VARIANTS}}
               for phase in ("storm", "churn")}
    summary["churn_p99_ms"] = {v: [r["p99_ms"] for r in runs if r["system"] == v] for v in VARIANTS}
    print_results(write_results("hub_gc", runs, summary))


if __name__ == "__main__":
    main()
