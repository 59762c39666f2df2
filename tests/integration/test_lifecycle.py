"""`surge up` as an operator runs it: boot to ready, Ctrl-C leaves nothing behind, data survives a
restart, and a bad setting ends it fast with one clear line. These start their own processes and
run before the shared stack (see conftest), so only one Ray runs at a time."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from tests.conftest import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.lifecycle]

SURGE = str(Path(sys.executable).parent / "surge")


def surge_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURGE_") and k not in (
        "DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "STRIPE_API_BASE", "ELASTICSEARCH_URL")}
    env.update(SURGE_DATA_DIR=str(data_dir), SURGE_HTTP_PORT=str(free_port()), SURGE_PG_PORT=str(free_port()),
               SURGE_VALKEY_PORT=str(free_port()), SURGE_STRIPE_PORT=str(free_port()), SURGE_HUB_PORT=str(free_port()),
               SURGE_HAPROXY_STATS_PORT=str(free_port()), SURGE_HAPROXY_METRICS_PORT=str(free_port()),
               SURGE_FALLBACK_PROXY_PORT=str(free_port()), SURGE_FALLBACK_GRPC_PORT=str(free_port()))
    env.update(extra)
    return env


class SurgeProcess:
    def __init__(self, env: dict[str, str], log: Path):
        self.env = env
        self.api = f"http://127.0.0.1:{env['SURGE_HTTP_PORT']}"
        self.log = log
        # its own session, so SIGINT to its group is exactly what a terminal's Ctrl-C does
        self.proc = subprocess.Popen([SURGE, "up"], env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout_s: float = 90) -> None:
        def ready():
            assert self.proc.poll() is None, f"surge up exited early:\n{self.log.read_text()[-3000:]}"
            if not (Path(self.env["SURGE_DATA_DIR"]) / "run.json").exists():
                return False  # surge up writes it once everything is started
            try:
                return httpx.get(f"{self.api}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(ready, timeout_s=timeout_s, interval_s=0.5, what="/readyz 200 and the run file")

    def processes(self) -> dict[psutil.Process, str]:
        """Every live process this run started, with its command line: its descendants, and every
        process of its Ray cluster (found by the GCS port in their command lines)."""
        run = json.loads((Path(self.env["SURGE_DATA_DIR"]) / "run.json").read_text())
        gcs_port = run["ray"].rsplit(":", 1)[1]
        candidates = psutil.Process(self.proc.pid).children(recursive=True)
        candidates += [p for p in psutil.process_iter() if p.pid != self.proc.pid]
        found: dict[psutil.Process, str] = {}
        descendants = {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        for p in candidates:
            try:
                cmd = " ".join(p.cmdline())
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue  # short-lived workers come and go
            if p.pid in descendants or f":{gcs_port}" in cmd or self.env["SURGE_DATA_DIR"] in cmd:
                found[p] = cmd
        return found

    def ctrl_c(self, timeout_s: float = 90) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout_s)

    def ensure_stopped(self) -> None:
        """After a failed assertion: never leave a whole stack running behind the test."""
        if self.proc.poll() is None:
            try:
                self.ctrl_c(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def test_surge_up_boots_ready_stops_clean_on_ctrl_c_and_keeps_data_across_restart(tmp_path, server_dir):
    data = server_dir / "data"
    env = surge_env(data)
    first = SurgeProcess(env, tmp_path / "up1.log")
    try:
        _first_run(first, data)
    finally:
        first.ensure_stopped()
    second = SurgeProcess(surge_env(data), tmp_path / "up2.log")
    try:
        _second_run(second)
    finally:
        second.ensure_stopped()


def _first_run(first: SurgeProcess, data: Path) -> None:
    started = time.monotonic()
    first.wait_ready()
    assert time.monotonic() - started < 90
    run = json.loads((data / "run.json").read_text())
    with psycopg.connect(run["database"]) as conn:  # the demo seed of UI_CONTRACT.md
        assert conn.execute("select status from products where slug = 'sample-product'").fetchone() == ("active",)
    levels = httpx.get(f"{first.api}/inventory/levels", params={"sku": "SAMPLE-1"}).json()
    assert levels["SAMPLE-1"]["available"] > 0
    held = httpx.post(f"{first.api}/inventory/reservations", json={
        "reservation_id": "lifecycle-1", "owner": "cart:lc", "lines": [{"sku": "SAMPLE-1", "quantity": 2}], "ttl_s": 3600})
    assert held.status_code == 201, held.text
    procs = first.processes()
    names = " ".join(procs.values())
    for part in ("postgres", "valkey", "localstripe", "raylet", "realtime.server"):
        assert part in names, f"expected a {part} process among what surge up started"

    assert first.ctrl_c() == 0
    try:
        wait_for(lambda: not [p for p in procs if _alive(p)], timeout_s=30, what="no process left")
    except AssertionError:
        pass  # reported with the list below
    left = [p.pid for p in procs if _alive(p)]
    assert not left, f"processes left after Ctrl-C: {left}"
    assert not (data / "run.json").exists()


def _second_run(second: SurgeProcess) -> None:
    second.wait_ready()
    lv = httpx.get(f"{second.api}/inventory/levels", params={"sku": "SAMPLE-1"}).json()["SAMPLE-1"]
    assert lv["reserved"] == 2  # the first run's hold survived the restart (the seed reserves nothing)
    again = httpx.post(f"{second.api}/inventory/reservations", json={
        "reservation_id": "lifecycle-1", "owner": "cart:lc", "lines": [{"sku": "SAMPLE-1", "quantity": 2}], "ttl_s": 3600})
    assert again.status_code == 201  # the same id is the same reservation, not a second one
    lv2 = httpx.get(f"{second.api}/inventory/levels", params={"sku": "SAMPLE-1"}).json()["SAMPLE-1"]
    assert lv2["reserved"] == 2
    procs = second.processes()
    assert second.ctrl_c() == 0
    wait_for(lambda: not [p for p in procs if _alive(p)], timeout_s=30, what="no process left")


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("setting, value, message", [
    ("DATABASE_URL", "postgresql://surge@127.0.0.1:1/surge", "cannot reach the database"),
    ("DATABASE_URL", "mysql://127.0.0.1/x", "DATABASE_URL must be a postgres/postgresql:// URL"),
    ("REDIS_URL", "redis://127.0.0.1:notaport/0", "REDIS_URL is malformed"),
    ("SURGE_HTTP_PORT", "eighty", "bad setting HTTP_PORT"),
    ("SURGE_JWT_SECRET", "changeme-changeme-changeme-changeme", "bad setting SURGE_JWT_SECRET"),
])
def test_a_bad_setting_ends_surge_up_within_10s_with_one_clear_line(server_dir, setting, value, message):
    env = surge_env(server_dir / "data", **{setting: value})
    started = time.monotonic()
    out = subprocess.run([SURGE, "up"], env=env, capture_output=True, text=True, timeout=30)
    assert time.monotonic() - started < 10
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and message in errors[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
