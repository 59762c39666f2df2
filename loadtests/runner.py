"""Run Locust headless in a subprocess and turn its CSV output into one result dict.

Contract of ``run_locust``:
- the target must be ``http://127.0.0.1:<port>`` (loopback only; anything else is a ``ValueError``);
- Locust runs as one process (``--headless --only-summary --reset-stats``), bounded by
  ``--run-time``/``--stop-timeout`` and by a hard subprocess timeout, after which it is killed
  and ``LocustError`` is raised;
- statistics are those after spawning completed (``--reset-stats``), taken from the
  ``Aggregated`` row of the stats CSV; the same figures per request name are under ``by_name``.
  ``reset_stats=False`` (for spikes, where the spawn is the test) keeps everything from the
  first request. Locust records response times rounded to whole milliseconds (coarser above
  100 ms), so p50/p99 have that granularity. Locust rewrites the CSV once a second and not
  again at exit, so counts can miss up to the last second of the run (a locustfile that needs
  exact final figures must write them itself at ``quitting``);
- while Locust runs, the CPU seconds (user+system) of each given server pid and all its
  descendants are sampled with psutil; processes that exit mid-run keep their last sample.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

LOCUSTFILES = Path(__file__).resolve().parent / "locustfiles"
LOOPBACK = "127.0.0.1"
STOP_TIMEOUT_S = 5
STARTUP_MARGIN_S = 45
SAMPLE_EVERY_S = 0.5


class LocustError(RuntimeError):
    """Locust did not finish in time or produced no usable statistics."""


def check_loopback_url(url: str) -> str:
    """Return ``url`` without a trailing slash if it is ``http://127.0.0.1:<port>``; else raise ``ValueError``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != LOOPBACK or parts.port is None:
        raise ValueError(f"load may only target http://{LOOPBACK}:<port>, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"give the base URL without a path, got {url!r}")
    return f"http://{LOOPBACK}:{parts.port}"


class CpuSampler:
    """Accumulates CPU seconds of process trees, keyed by a system name.

    ``sample()`` reads every live process in each tree; a process's contribution is its
    latest reading minus its reading when first seen (zero for processes first seen in
    the initial sample, i.e. only CPU spent during the window is counted, apart from
    processes born mid-window, which count from birth).
    """

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._roots = dict(pids)
        self._first: dict[str, dict[int, float]] = {name: {} for name in self._roots}
        self._last: dict[str, dict[int, float]] = {name: {} for name in self._roots}
        self._initial = True

    @staticmethod
    def _tree(pid: int) -> Iterable[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        for name, pid in self._roots.items():
            for proc in self._tree(pid):
                try:
                    t = proc.cpu_times()
                except psutil.Error:
                    continue
                used = t.user + t.system
                self._first[name].setdefault(proc.pid, used if self._initial else 0.0)
                self._last[name][proc.pid] = used
        self._initial = False

    def cpu_s(self) -> dict[str, float]:
        return {
            name: round(sum(v - self._first[name][p] for p, v in self._last[name].items()), 2)
            for name in self._roots
        }


def _num(row: Mapping[str, str], key: str) -> float | None:
    try:
        return float(row.get(key, ""))
    except ValueError:
        return None


def _row_figures(row: Mapping[str, str]) -> dict[str, Any]:
    return {
        "requests": int(_num(row, "Request Count") or 0),
        "failures": int(_num(row, "Failure Count") or 0),
        "req_per_s": round(_num(row, "Requests/s") or 0.0, 1),
        "p50_ms": _num(row, "50%"),
        "p99_ms": _num(row, "99%"),
    }


def _parse_stats(prefix: str) -> dict[str, Any]:
    stats_path = Path(f"{prefix}_stats.csv")
    if not stats_path.exists():
        raise LocustError(f"Locust wrote no stats file ({stats_path})")
    with stats_path.open(newline="") as f:
        all_rows = list(csv.DictReader(f))
    rows = [r for r in all_rows if r.get("Name") == "Aggregated"]
    if not rows:
        raise LocustError(f"no Aggregated row in {stats_path}")
    agg = rows[0]
    by_name: dict[str, dict[str, Any]] = {}
    for r in all_rows:
        if r.get("Name") == "Aggregated":
            continue
        key = r.get("Name", "")
        if key in by_name:  # the same name under two methods: tell them apart
            key = f"{r.get('Type', '')} {key}"
        by_name[key] = _row_figures(r)

    errors: dict[str, int] = {}
    failures_path = Path(f"{prefix}_failures.csv")
    if failures_path.exists():
        with failures_path.open(newline="") as f:
            for r in csv.DictReader(f):
                key = f"{r['Method']} {r['Name']}: {r['Error']}"
                errors[key] = errors.get(key, 0) + int(r["Occurrences"])
    return {**_row_figures(agg), "errors": errors, "by_name": by_name}


def run_locust(
    locustfile: str | Path,
    host: str,
    users: int,
    spawn_rate: float,
    run_time_s: int,
    extra_env: Mapping[str, str] | None = None,
    tags: Iterable[str] | None = None,
    server_pids: Mapping[str, int] | None = None,
    reset_stats: bool = True,
) -> dict[str, Any]:
    """Run one headless Locust test against ``host`` and return its figures.

    ``locustfile`` is a path, or a bare name resolved in ``loadtests/locustfiles/``.
    ``extra_env`` is added to Locust's environment (scenario knobs such as
    ``SURGE_BENCH_PATH``); ``tags`` become ``--tags``; ``server_pids`` maps a system name
    to a pid whose process tree's CPU is sampled over the run. ``reset_stats=False`` drops
    ``--reset-stats`` so the statistics include the spawning phase.

    Returns ``{"requests", "failures", "req_per_s", "p50_ms", "p99_ms",
    "errors": {"<method> <name>: <error>": count}, "cpu_s": {system: seconds},
    "loadgen_cpu_s": seconds, "wall_s": seconds, "by_name": {name: {"requests", "failures",
    "req_per_s", "p50_ms", "p99_ms"}}, "loadgen_warnings": [Locust's CPU-usage warnings]}``.
    A run with failures is returned, not raised; a run that times out or writes no statistics raises ``LocustError``.
    """
    base = check_loopback_url(host)
    if users < 1 or spawn_rate <= 0 or run_time_s < 1:
        raise ValueError("users >= 1, spawn_rate > 0 and run_time_s >= 1 are required")
    path = Path(locustfile)
    if not path.is_absolute() and not path.exists():
        path = LOCUSTFILES / path.with_suffix(".py").name
    if not path.is_file():
        raise FileNotFoundError(path)

    with tempfile.TemporaryDirectory(prefix="surge-locust-") as tmp:
        prefix = os.path.join(tmp, "run")
        cmd = [
            sys.executable, "-m", "locust", "-f", str(path), "--headless", "--only-summary",
            "--host", base, "--users", str(users), "--spawn-rate", str(spawn_rate),
            "--run-time", f"{run_time_s}s", "--stop-timeout", str(STOP_TIMEOUT_S),
            "--csv", prefix, "--loglevel", "WARNING",
        ]
        if reset_stats:
            cmd.append("--reset-stats")
        tag_list = list(tags or [])
        if tag_list:
            cmd += ["--tags", *tag_list]
        env = {**os.environ, **(extra_env or {})}
        log_path = os.path.join(tmp, "locust.log")
        hard_timeout = run_time_s + STOP_TIMEOUT_S + STARTUP_MARGIN_S
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        sampler = CpuSampler({**(server_pids or {}), "__loadgen__": proc.pid})
        started = time.monotonic()
        try:
            while proc.poll() is None:
                sampler.sample()
                if time.monotonic() - started > hard_timeout:
                    raise LocustError(f"Locust exceeded its hard timeout of {hard_timeout}s")
                time.sleep(SAMPLE_EVERY_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        wall_s = round(time.monotonic() - started, 1)
        log_text = Path(log_path).read_text(errors="replace")
        log_tail = log_text[-2000:]
        cpu_warnings = [line.strip() for line in log_text.splitlines() if "CPU usage" in line]
        # Locust exits 1 when any request failed; that is a result, not a crash.
        if proc.returncode not in (0, 1):
            raise LocustError(f"Locust exited with {proc.returncode}:\n{log_tail}")
        try:
            result = _parse_stats(prefix)
        except LocustError as exc:
            raise LocustError(f"{exc}\n{log_tail}") from None
    cpu = sampler.cpu_s()
    result["loadgen_cpu_s"] = cpu.pop("__loadgen__")
    result["cpu_s"] = cpu
    result["wall_s"] = wall_s
    result["loadgen_warnings"] = cpu_warnings
    return result
