"""Trivial-endpoint comparison: Surge (already running) vs the baseline app (started here).

    python -m loadtests.bench_trivial --surge-url http://127.0.0.1:8000 [--surge-pid PID]
        [--rounds 2] [--run-time 10] [--users 64] [--warmup 3]

Contract:
- Surge must already be up at ``--surge-url`` (loopback only) and answer 200 on
  ``--surge-path`` (default ``/healthz``); the check is bounded and fails fast.
- The baseline app is started on a free 127.0.0.1 port without a database
  (``BASELINE_DATABASE_URL`` is removed from its environment; ``/healthz`` needs none)
  and is stopped by pid when the bench ends, however it ends.
- After one unrecorded warm-up per system, runs interleave baseline, surge, baseline,
  surge, ... (``--rounds`` pairs) with the same Locust settings (one process, FastHttpUser).
- Writes ``loadtests/results/trivial.json``: one run per system with figures averaged over
  rounds (req/s, p50, p99), totals (requests, failures, CPU seconds) and per-round figures;
  summary ``surge_vs_baseline_req_per_s`` (ratio of the means) and the per-round ratios.
  Surge's CPU is sampled only when ``--surge-pid`` names the root of its process tree
  (e.g. the ``surge up`` process); the baseline's always is.
- Exit status 2 if Surge is not serving, 1 if any request failed (results are still written),
  else 0. A warning is printed when Locust itself used most of a core (load-generator bound).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from loadtests.results import print_results, write_results
from loadtests.servers import REPO_ROOT, free_port, start_baseline, stop, wait_ok
from loadtests.runner import LOOPBACK, check_loopback_url, run_locust


LOCUSTFILE = "trivial.py"
BENCH = "trivial"
LOADGEN_BUSY = 0.85  # share of one core above which a single Locust process is the bottleneck


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.fmean(values), 2) if values else None


def aggregate(system: str, url: str, path: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One run entry for ``system``: means over rounds, totals, and the per-round figures."""
    errors: dict[str, int] = {}
    for r in rounds:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    cpu = [r["cpu_s"].get(system) for r in rounds]
    return {
        "system": system,
        "url": url + path,
        "req_per_s": _mean(rounds, "req_per_s"),
        "p50_ms": _mean(rounds, "p50_ms"),
        "p99_ms": _mean(rounds, "p99_ms"),
        "requests": sum(r["requests"] for r in rounds),
        "failures": sum(r["failures"] for r in rounds),
        "errors": errors,
        "cpu_s": round(sum(c for c in cpu if c is not None), 2) if all(c is not None for c in cpu) else None,
        "loadgen_cpu_s": round(sum(r["loadgen_cpu_s"] for r in rounds), 2),
        "rounds": [
            {k: r[k] for k in ("req_per_s", "p50_ms", "p99_ms", "requests", "failures", "wall_s", "loadgen_cpu_s")}
            | {"cpu_s": r["cpu_s"].get(system)}
            for r in rounds
        ],
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench_trivial", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--surge-url", default=None,
                   help="base URL of a running Surge, e.g. http://127.0.0.1:8000 (default: start one with `surge up`)")
    p.add_argument("--surge-path", default="/healthz")
    p.add_argument("--baseline-path", default="/healthz")
    p.add_argument("--surge-pid", type=int, default=None, help="root pid of Surge's process tree, for CPU seconds")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--run-time", type=int, default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=int, default=3, help="seconds of unrecorded warm-up per system (0: none)")
    p.add_argument("--users", type=int, default=64)
    p.add_argument("--spawn-rate", type=float, default=None, help="users started per second (default: all at once)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.run_time < 1 or args.warmup < 0:
        p.error("--rounds and --run-time must be >= 1, --warmup >= 0")
    try:
        if args.surge_url:
            args.surge_url = check_loopback_url(args.surge_url)
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.surge_url:
        return compare(args)
    from loadtests.servers import surge_up

    with surge_up() as surge:
        args.surge_url, args.surge_pid = surge.url, surge.pid
        return compare(args)


def compare(args: argparse.Namespace) -> int:
    spawn_rate = args.spawn_rate or float(args.users)
    try:
        wait_ok(args.surge_url + args.surge_path, timeout_s=15)
    except TimeoutError as exc:
        print(f"Surge is not serving: {exc}", file=sys.stderr)
        return 2

    baseline_port = free_port()
    baseline = start_baseline(baseline_port)
    try:
        baseline_url = f"http://{LOOPBACK}:{baseline_port}"
        targets = {
            "baseline": (baseline_url, args.baseline_path, {"baseline": baseline.pid}),
            "surge": (args.surge_url, args.surge_path, {"surge": args.surge_pid} if args.surge_pid else {}),
        }

        def once(system: str, seconds: int) -> dict[str, Any]:
            url, path, pids = targets[system]
            return run_locust(LOCUSTFILE, url, args.users, spawn_rate, seconds,
                              extra_env={"SURGE_BENCH_PATH": path}, server_pids=pids)

        if args.warmup:
            for system in targets:
                once(system, args.warmup)
        per_round: dict[str, list[dict[str, Any]]] = {s: [] for s in targets}
        for i in range(args.rounds):
            for system in ("baseline", "surge"):
                r = once(system, args.run_time)
                per_round[system].append(r)
                print(f"round {i + 1}/{args.rounds} {system:8} {r['req_per_s']:>9.1f} req/s  "
                      f"p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  failures {r['failures']}", flush=True)
    finally:
        stop(baseline)

    runs = [aggregate(s, targets[s][0], targets[s][1], per_round[s]) for s in ("surge", "baseline")]
    by_system = {r["system"]: r for r in runs}
    summary = {
        "surge_vs_baseline_req_per_s": ratio(by_system["surge"]["req_per_s"], by_system["baseline"]["req_per_s"]),
        "surge_vs_baseline_req_per_s_by_round": [
            ratio(s["req_per_s"], b["req_per_s"]) for s, b in zip(per_round["surge"], per_round["baseline"])
        ],
        "users": args.users,
        "run_time_s": args.run_time,
        "rounds": args.rounds,
    }
    path = write_results(BENCH, runs, summary)
    print_results(path)
    print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    print(f"surge/baseline req/s = {summary['surge_vs_baseline_req_per_s']}")
    busy = [r for rs in per_round.values() for r in rs if r["loadgen_cpu_s"] >= LOADGEN_BUSY * r["wall_s"]]
    if busy:
        print(f"WARNING: Locust used >= {LOADGEN_BUSY:.0%} of a core in {len(busy)} run(s); "
              "the faster system may be load-generator bound", file=sys.stderr)
    failed = sum(r["failures"] for r in runs)
    if failed:
        print(f"WARNING: {failed} requests failed; see 'errors' in the results file", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
