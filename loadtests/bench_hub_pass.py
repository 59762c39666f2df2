"""The cost of one fan-out pass of the hub alone, against the floor of bare writes to the same sockets.

    python -m loadtests.bench_hub_pass [--clients 10000] [--passes 30] [--procs 2] [--impl raw direct floor]

Contract:
- No Surge: per implementation, a `Hub` with that fan-out behind the hub's own connection handler
  (`realtime.server.handler`) on a free 127.0.0.1 port, in this process, on the event loop it ships
  with (raw and floor on uvloop, direct and queued on asyncio's). `--procs` client processes
  (`loadtests.ws_clients`, raw protocol, no compression) open `--clients` sockets in all and
  subscribe them to one product topic. The hub writes each pass in one go (`pass_slice=0`, no
  rolling pass), so that the pass is timed around `publish`.
- Then `--passes` stock levels are published 0.1 s apart. `floor` does not publish: it writes the
  same encoded frame with one `os.write()` per subscribed socket's descriptor and nothing else,
  which is what a pass cannot get under on this kernel.
- Figures per implementation: the pass's wall time and this process's CPU time per pass
  (`pass_wall_*`, `pass_cpu_*`); the client processes' CPU time per pass (`client_cpu_per_pass_ms`,
  from the first pass to the end of the run: reading the frames, which on loopback also has the
  kernel's share of receiving); `box_bound_ms` = (pass CPU p50 + client CPU per pass) / CPUs, the
  least wall time the box can deliver every frame in, however the work were spread over its cores;
  and the client-side latency of every frame from the moment its
  pass began (`p50_ms`, `p99_ms`); `req_per_s` = frames received per second of the publishing phase.
- Clients are stopped by pid (SIGTERM, then SIGKILL) however the bench ends; each one also stops by
  itself after `--max-seconds`. Writes `loadtests/results/hub_pass.json`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import uvloop
from websockets.asyncio.server import serve

from loadtests.bench_realtime import percentile, raise_own_nofile
from loadtests.results import print_results, write_results
from cluster.embedded import stop_processes
from loadtests.servers import REPO_ROOT
from realtime.hub import Hub, Outgoing
from realtime.server import handler

TOPIC = "product:PASS"
LOOPS = {"raw": "uvloop", "floor": "uvloop", "direct": "asyncio", "queued": "asyncio"}


def rnd(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def level(k: int) -> dict:
    return {"sku": "PASS", "available": k, "on_hand": 1_000_000, "sold_out": False}


def client_cpu_s(children: list[subprocess.Popen]) -> float:
    total = 0.0
    for child in children:
        try:
            times = psutil.Process(child.pid).cpu_times()
        except psutil.NoSuchProcess:  # a client that died is missing from the figure, and from `connected`
            continue
        total += times.user + times.system
    return total


async def one_impl(impl: str, clients: int, passes: int, procs: int, max_seconds: float) -> dict:
    hub = Hub(fanout="raw" if impl == "floor" else impl, pass_slice=0)  # one whole pass inside publish: timed here
    work = Path(tempfile.mkdtemp(prefix=f"hub-pass-{impl}-"))
    async with serve(handler(hub), "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        children = [subprocess.Popen(
            [sys.executable, "-m", "loadtests.ws_clients", "--url", f"ws://127.0.0.1:{port}", "--topic", TOPIC,
             "--n", str(clients // procs), "--out", str(work / f"p{i}"), "--compression", "none",
             "--max-seconds", str(max_seconds)], cwd=REPO_ROOT, start_new_session=True) for i in range(procs)]
        try:
            deadline = time.monotonic() + max_seconds / 2
            while not all((work / f"p{i}.ready.json").exists() for i in range(procs)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{impl}: clients not connected within {max_seconds / 2:.0f} s")
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)  # the last subscribe acks and snapshots are out
            connected = len(hub.subscribers.get(TOPIC, ()))
            clients_cpu = client_cpu_s(children)
            walls, cpus, began = [], [], []
            for k in range(passes):
                if impl == "floor":
                    wire = Outgoing(hub.frame(TOPIC, k + 1, level(k))).wire
                    fds = [c.fd for c in hub.subscribers[TOPIC]]
                began.append(time.time())
                wall, cpu = time.perf_counter(), time.process_time()
                if impl == "floor":
                    for fd in fds:
                        try:
                            os.write(fd, wire)
                        except OSError:
                            pass
                else:
                    hub.publish(TOPIC, level(k), seq=k + 1)
                walls.append((time.perf_counter() - wall) * 1000)
                cpus.append((time.process_time() - cpu) * 1000)
                await asyncio.sleep(0.1)
            published = time.time() - began[0]
            await asyncio.sleep(2)  # the last frames arrive
            client_cpu_ms = (client_cpu_s(children) - clients_cpu) * 1000 / passes
        finally:
            stop_processes(children, grace_s=30)
    latency = []
    for i in range(procs):
        path = work / f"p{i}.json"
        if path.exists():
            doc = json.loads(path.read_text())
            latency += [(t - began[a]) * 1000 for a, t in zip(doc["available"], doc["t"]) if 0 <= a < passes]
    for values in (latency, walls, cpus):
        values.sort()
    pass_cpu = percentile(cpus, 0.5)
    return {"system": impl, "loop": LOOPS[impl], "clients": clients, "connected": connected, "passes": passes,
            "pass_wall_p50_ms": rnd(percentile(walls, 0.5)), "pass_wall_max_ms": rnd(walls[-1]),
            "pass_cpu_p50_ms": rnd(pass_cpu), "client_cpu_per_pass_ms": rnd(client_cpu_ms),
            "box_bound_ms": rnd((pass_cpu + client_cpu_ms) / (os.cpu_count() or 1)),
            "p50_ms": rnd(percentile(latency, 0.5)), "p99_ms": rnd(percentile(latency, 0.99)),
            "frames": len(latency), "req_per_s": round(len(latency) / published, 1) if published > 0 else None}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench_hub_pass", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=10_000)
    p.add_argument("--passes", type=int, default=30)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--impl", nargs="+", choices=list(LOOPS), default=["raw", "direct", "floor"])
    p.add_argument("--max-seconds", type=float, default=240, help="bound of each implementation's run")
    args = p.parse_args(argv)
    raise_own_nofile()
    # the clients end without a closing handshake (ws_clients' contract): not an error worth a traceback each
    logging.getLogger("websockets.server").setLevel(logging.CRITICAL)
    runs = []
    for impl in args.impl:
        runner = uvloop.run if LOOPS[impl] == "uvloop" else asyncio.run
        run = runner(one_impl(impl, args.clients, args.passes, args.procs, args.max_seconds))
        print(f"  {impl}: pass wall p50 {run['pass_wall_p50_ms']} ms, cpu p50 {run['pass_cpu_p50_ms']} ms, "
              f"client p50/p99 {run['p50_ms']}/{run['p99_ms']} ms, client cpu {run['client_cpu_per_pass_ms']} ms/pass, "
              f"box bound {run['box_bound_ms']} ms, {run['connected']} connected", flush=True)
        runs.append(run)
    floor = next((r for r in runs if r["system"] == "floor"), None)
    summary = {"pass_cpu_over_floor": {r["system"]: round(r["pass_cpu_p50_ms"] / floor["pass_cpu_p50_ms"], 2)
                                       for r in runs if floor and floor["pass_cpu_p50_ms"]}}
    print_results(write_results("hub_pass", runs, summary))


if __name__ == "__main__":
    main()
