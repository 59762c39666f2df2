"""The servers a benchmark runs against, started and stopped by pid, on loopback only:

- `surge_up()`: a whole Surge (`surge up` as a subprocess in a temporary data dir, on free ports),
  stopped with SIGINT (an operator's Ctrl-C) however the benchmark ends;
- `start_baseline()`: the baseline app (`python -m loadtests.baseline`), optionally on a database.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cluster.embedded import free_port, stop_processes

SURGE = str(Path(sys.executable).parent / "surge")
REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class RunningSurge:
    url: str
    pid: int
    database_url: str
    admin_token: str
    data_dir: Path
    replica_url: str | None = None  # the replicas' own listener (SURGE_REPLICA_PORT)


@contextlib.contextmanager
def surge_up(extra_env: dict[str, str] | None = None, ready_timeout_s: float = 180) -> Iterator[RunningSurge]:
    data_dir = Path(tempfile.mkdtemp(prefix="surge-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURGE_") and k not in (
        "DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "STRIPE_API_BASE")}
    ports = ("HTTP_PORT", "PG_PORT", "VALKEY_PORT", "STRIPE_PORT", "HUB_PORT", "HAPROXY_STATS_PORT",
             "HAPROXY_METRICS_PORT", "FALLBACK_PROXY_PORT", "FALLBACK_GRPC_PORT", "REPLICA_PORT")
    env.update({f"SURGE_{p}": str(free_port()) for p in ports})
    env.update(SURGE_DATA_DIR=str(data_dir), SURGE_LOG_LEVEL="WARNING")
    env.update(extra_env or {})
    url = f"http://127.0.0.1:{env['SURGE_HTTP_PORT']}"
    log = open(data_dir / "surge-up.log", "ab")
    proc = subprocess.Popen([SURGE, "up"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + ready_timeout_s
        run_file = data_dir / "run.json"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"surge up exited ({proc.returncode}); see {data_dir / 'surge-up.log'}")
            if run_file.exists():
                try:
                    with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"surge up not ready within {ready_timeout_s}s; see {data_dir / 'surge-up.log'}")
            time.sleep(0.5)
        run = json.loads(run_file.read_text())
        yield RunningSurge(url=url, replica_url=f"http://127.0.0.1:{env['SURGE_REPLICA_PORT']}" if env.get("SURGE_REPLICA_PORT") else None,
                           pid=proc.pid, database_url=run["database"],
                           admin_token=(data_dir / "admin_token").read_text().strip(), data_dir=data_dir)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()
        if proc.returncode == 0:
            shutil.rmtree(data_dir, ignore_errors=True)  # a failed run keeps its logs to look at


def wait_ok(url: str, timeout_s: float) -> None:
    """Return once ``GET url`` answers 200; raise ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = resp.status
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s}s (last: {last})")


def start_baseline(port: int, dsn: str | None = None) -> subprocess.Popen[bytes]:
    """``python -m loadtests.baseline --port PORT`` (on ``dsn`` when given; without one only
    ``/healthz`` works) and wait until it serves. Its stderr goes to a temporary file, never a pipe
    that could fill and stall it, and is shown if it fails to start."""
    env = {k: v for k, v in os.environ.items() if k != "BASELINE_DATABASE_URL"}
    if dsn:
        env["BASELINE_DATABASE_URL"] = dsn
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    errlog = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtests.baseline", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errlog,
    )
    try:
        wait_ok(f"http://{LOOPBACK}:{port}/healthz", timeout_s=30)
    except TimeoutError:
        stop(proc)
        errlog.seek(0)
        raise RuntimeError(f"baseline app did not start:\n{errlog.read().decode(errors='replace')[-2000:]}") from None
    finally:
        errlog.close()
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after 10 s."""
    stop_processes([proc], grace_s=10)
