"""The `surge` command: up, migrate, seed, status, audit."""
from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from pathlib import Path
from typing import Annotated, Iterator

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cluster.settings import SurgeSettings
from storage.settings import StorageSettings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Surge: an actor-based realtime commerce runtime.")
console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]surge: error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings():
    try:
        from actors.settings import ActorSettings
        from serve_app.settings import ServeSettings

        return SurgeSettings(), StorageSettings(), ServeSettings(), ActorSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"bad setting {'.'.join(str(p) for p in first['loc']).upper()}: {first['msg']}", 2)


def _auth_settings():
    """AuthSettings from the environment; a placeholder or malformed secret ends the command in one line."""
    from storage.settings import AuthSettings

    try:
        return AuthSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"bad setting SURGE_{'.'.join(str(p) for p in first['loc']).upper()}: {first['msg']}", 2)


@contextlib.contextmanager
def database_url(surge: SurgeSettings, storage: StorageSettings) -> Iterator[str]:
    """DATABASE_URL, else the embedded server of this data dir (started for the command if it is not up)."""
    if storage.database_url:
        yield storage.database_url
        return
    from cluster.embedded import EmbeddedPostgres
    from cluster.local import read_run_file

    run = read_run_file(surge.data_dir)
    if run:
        yield run["database"]
        return
    pg = EmbeddedPostgres(Path(surge.data_dir).resolve(), surge.pg_port)
    try:
        yield pg.start(timeout_s=60)
    finally:
        pg.stop()


@app.command()
def up() -> None:
    """Start everything on this machine (embedded defaults) and run until Ctrl-C."""
    from cluster.local import BringUpError, LocalStack
    from storage.logs import configure_logging

    surge, storage, serve_s, actor_s = _settings()
    configure_logging("WARNING", component="cli")
    stack = LocalStack(surge, storage, serve_s, actor_s, say=lambda m: console.print(f"[dim]{m}[/]"),
                       auth=_auth_settings())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        urls = stack.start()
    except BringUpError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        stack.stop()
        raise typer.Exit(130)
    table = Table(title="Surge is up", show_header=False)
    for name, url in urls.public().items():
        table.add_row(name, url)
    table.add_row("data", str(stack.data_dir))
    console.print(table)
    console.print("Press Ctrl-C to stop.")
    stop.wait()
    console.print("stopping…")
    stack.stop()
    console.print("stopped.")


@app.command()
def migrate() -> None:
    """Apply pending schema migrations."""
    from storage.migrate import apply_migrations

    surge, storage, *_ = _settings()
    with database_url(surge, storage) as url:
        applied = apply_migrations(url)
    console.print(f"{len(applied)} migrations applied" + (f": {', '.join(applied)}" if applied else " (up to date)"))


@app.command()
def seed(products: Annotated[int, typer.Option(min=0, help="Generated products to add.")] = 0,
         demo: Annotated[bool, typer.Option(help="Also ensure the demo data.")] = True) -> None:
    """Seed the demo data and, with --products N, a generated catalog of N products."""
    from storage.migrate import apply_migrations
    from storage.pool import create_pool
    from storage.seed import seed_catalog, seed_demo

    surge, storage, *_ = _settings()

    async def run(url: str) -> None:
        pool = await create_pool(url, max_size=4)
        try:
            if demo and await seed_demo(pool):
                console.print("demo data created")
            if products:
                with Progress(TextColumn("seeding products"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
                    task = bar.add_task("products", total=products)
                    await seed_catalog(pool, products, progress=lambda n: bar.advance(task, n))
        finally:
            await pool.close()

    with database_url(surge, storage) as url:
        apply_migrations(url)
        asyncio.run(run(url))
    _refresh_running_owners(surge)


def _connect_ray(surge: SurgeSettings) -> dict | None:
    from actors.settings import ActorSettings
    from cluster.local import connect_ray, read_run_file

    run = read_run_file(surge.data_dir) or {}
    if surge.ray_address:
        run = {**run, "ray": surge.ray_address}
    if not run.get("ray"):
        return None
    connect_ray(run, ActorSettings().namespace)
    return run


def _directory(run: dict):
    from actors.directory import ActorDirectory, OwnerConfig
    from actors.settings import ActorSettings

    return ActorDirectory(OwnerConfig(database_url=run.get("database", ""), redis_url=run.get("redis"), settings=ActorSettings()))


def _refresh_running_owners(surge: SurgeSettings) -> None:
    """New SKU rows are adopted by running inventory owners (only they write stock)."""
    try:
        run = _connect_ray(surge)
    except Exception:
        run = None
    if run is None:
        return
    import ray

    directory = _directory(run)
    adopted = ray.get([h.refresh_skus.remote() for _, h in directory.all_handles("inventory")], timeout=120)
    console.print(f"running inventory owners adopted {sum(adopted)} new SKUs")


@app.command()
def status() -> None:
    """Every owner actor and API replica with its state, and the realtime hub; exit code 1 when
    something is down."""
    surge, *_ = _settings()
    try:
        run = _connect_ray(surge)
    except Exception as exc:
        fail(f"Surge is not running (no Ray at the recorded address: {type(exc).__name__})")
    if run is None:
        fail("Surge is not running here (no run file in the data dir and RAY_ADDRESS unset)")
    from ray import serve

    directory = _directory(run)
    owners = asyncio.run(directory.ping_all(timeout_s=5))
    table = Table(title="Surge status")
    for col in ("component", "state", "detail"):
        table.add_column(col)
    down = 0
    for name, info in owners.items():
        ok = info.get("ok") and info.get("ready", True)
        down += not ok
        table.add_row(f"actor {name}", "[green]UP[/]" if ok else "[red]DOWN[/]",
                      f"pid {info.get('pid')} skus {info.get('skus')}" if info.get("ok") else info.get("error", "loading"))
    try:
        st = serve.status()
        for app_name, app_status in st.applications.items():
            for dep_name, dep in app_status.deployments.items():
                healthy = dep.status == "HEALTHY"
                down += not healthy
                replicas = ", ".join(f"{n} {s}" for s, n in dep.replica_states.items())
                table.add_row(f"deployment {app_name}/{dep_name}", "[green]UP[/]" if healthy else f"[red]{dep.status}[/]", replicas)
        for node, proxy in st.proxies.items():
            table.add_row(f"proxy {node[:8]}", "[green]UP[/]" if proxy == "HEALTHY" else f"[red]{proxy}[/]", "")
            down += proxy != "HEALTHY"
    except Exception as exc:
        down += 1
        table.add_row("serve", "[red]DOWN[/]", type(exc).__name__)
    if run.get("hub"):
        ok, detail = hub_status(run["hub"], surge.hub_processes)
        down += not ok
        table.add_row(f"hub {run['hub']}", "[green]UP[/]" if ok else "[red]DOWN[/]", detail)
    console.print(table)
    raise typer.Exit(1 if down else 0)


def hub_status(hub_url: str, processes: int = 1, timeout_s: float = 3.0) -> tuple[bool, str]:
    """The realtime hub's health (`/healthz`) and the sockets it holds (`surge_hub_clients` on its
    `/metrics`). Processes sharing the port (SO_REUSEPORT) answer one at a time: the figure is the
    answering one's."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    base = hub_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1).rstrip("/")
    try:
        with httpx.Client(timeout=timeout_s) as client:
            client.get(f"{base}/healthz").raise_for_status()
            text = client.get(f"{base}/metrics").text
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    clients = next((int(s.value) for f in text_string_to_metric_families(text) if f.name == "surge_hub_clients"
                    for s in f.samples), None)
    detail = "clients unknown" if clients is None else f"{clients} clients"
    return True, detail + (f" (one of {processes} processes)" if processes > 1 else "")


@app.command()
def audit(grace: Annotated[float, typer.Option(help="Seconds a hold may outlive its expiry before it is a breach.")] = 60.0) -> None:
    """Check every inventory invariant from the database; exit code 1 on any breach."""
    from storage.audit import audit_inventory
    from storage.pool import create_pool

    surge, storage, *_ = _settings()

    async def run(url: str):
        pool = await create_pool(url, max_size=2)
        try:
            return await audit_inventory(pool, grace), await pool.fetchval("select count(*) from stock_levels")
        finally:
            await pool.close()

    with database_url(surge, storage) as url:
        breaches, skus = asyncio.run(run(url))
    for b in breaches:
        err.print(f"[red]BREACH[/] {b}", highlight=False)
    if breaches:
        fail(f"{len(breaches)} breaches in {skus} SKUs")
    console.print(f"audit clean: {skus} SKUs, every invariant holds")


@app.command("pii-rotate")
def pii_rotate(new_key: Annotated[bool, typer.Option(
        help="Only add a new newest key to the data dir's pii_keys (SURGE_PII_KEYS unset).")] = False) -> None:
    """Re-encrypt phone numbers and addresses under the newest PII key, after which older keys can be
    removed. Rotation: `--new-key`, restart the API (every replica must know the key), then run this."""
    from cluster.local import local_auth_settings
    from storage.crypto import PiiCipher, generate_key, reencrypt_all
    from storage.pool import create_pool

    surge, storage, *_ = _settings()
    data_dir = Path(surge.data_dir).resolve()
    auth = _auth_settings()
    if new_key:
        if auth.pii_keys:
            fail("SURGE_PII_KEYS is set: add the new key at its front yourself, then run without --new-key")
        keys_file = data_dir / "pii_keys"
        local_auth_settings(data_dir, auth)  # makes the file if there is none yet
        keys_file.write_text(generate_key() + "\n" + keys_file.read_text())
        # re-encrypting now would write values the running API cannot read yet
        console.print("new PII key added; restart `surge up`, then run `surge pii-rotate` to re-encrypt")
        return
    cipher = PiiCipher.from_spec(local_auth_settings(data_dir, auth).pii_keys)

    async def run(url: str) -> int:
        pool = await create_pool(url, max_size=2)
        try:
            return await reencrypt_all(pool, cipher)
        finally:
            await pool.close()

    with database_url(surge, storage) as url:
        changed = asyncio.run(run(url))
    console.print(f"{changed} rows re-encrypted under key {cipher.primary_kid}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
