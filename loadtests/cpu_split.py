"""CPU seconds per process kind of a running process tree, over a window: where a load's CPU goes.

    python -m loadtests.cpu_split PID [--seconds 8]

PID is the root of the tree (`surge up`'s pid; its children include Ray's workers, PostgreSQL,
Valkey, HAProxy and the hub). Processes are grouped by kind: a Ray worker by its actor class
(`ray::InventoryShard`), anything else by its executable and first arguments. Prints one line per
kind, most CPU first, and the total. Divide by the work done in the window (purchases, requests)
for CPU per unit of work; run it while a load runs, and stop it before the load does.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

import psutil


def kind(cmdline: list[str], name: str) -> str:
    """The group a process counts in (pure)."""
    joined = " ".join(cmdline)
    if joined.startswith("ray::"):
        return joined.split()[0].split(".")[0][:60]  # ray::InventoryShard.reserve_many -> ray::InventoryShard
    return " ".join([name, *cmdline[1:3]])[:60]


def _cpu(root: psutil.Process) -> dict[int, tuple[str, float]]:
    out = {}
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            out[p.pid] = (kind(p.cmdline(), p.name()), t.user + t.system)
        except psutil.Error:  # exited meanwhile
            pass
    return out


def split(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> Counter:
    """CPU seconds per kind between two samples; a process born in between counts from zero (pure)."""
    used: Counter = Counter()
    for pid, (k, t) in after.items():
        used[k] += t - before.get(pid, (k, 0.0))[1]
    return used


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtests.cpu_split", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pid", type=int)
    p.add_argument("--seconds", type=float, default=8.0)
    args = p.parse_args(argv)
    root = psutil.Process(args.pid)
    before, t0 = _cpu(root), time.monotonic()
    time.sleep(args.seconds)
    used, window = split(before, _cpu(root)), time.monotonic() - t0
    for k, s in used.most_common():
        if s >= 0.005:
            print(f"{s:8.2f}  {k}")
    print(f"{sum(used.values()):8.2f}  total CPU s over {window:.1f} s")


if __name__ == "__main__":
    main()
