"""Run a whole Surge for a benchmark: `surge up` as a subprocess in a temporary data dir, on free
loopback ports, stopped with SIGINT (as an operator's Ctrl-C) however the benchmark ends."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SURGE = str(Path(sys.executable).parent / "surge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunningSurge:
    url: str
    pid: int
    database_url: str
    admin_token: str
    data_dir: Path


@contextlib.contextmanager
def surge_up(extra_env: dict[str, str] | None = None, ready_timeout_s: float = 180) -> Iterator[RunningSurge]:
    data_dir = Path(tempfile.mkdtemp(prefix="surge-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURGE_") and k not in (
        "DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "STRIPE_API_BASE")}
    ports = ("HTTP_PORT", "PG_PORT", "VALKEY_PORT", "STRIPE_PORT", "HUB_PORT", "HAPROXY_STATS_PORT",
             "HAPROXY_METRICS_PORT", "FALLBACK_PROXY_PORT", "FALLBACK_GRPC_PORT")
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
        yield RunningSurge(url=url, pid=proc.pid, database_url=run["database"],
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
