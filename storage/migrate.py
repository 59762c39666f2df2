"""Schema migrations: plain SQL files in `storage/migrations/`, applied by yoyo under its lock."""
from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _yoyo_url(dsn: str) -> str:
    # yoyo picks its driver from the scheme; psycopg 3 is the one we ship.
    scheme, rest = dsn.split("://", 1)
    return f"postgresql+psycopg://{rest}"


def apply_migrations(dsn: str) -> list[str]:
    """Apply every pending migration; returns the ids applied (empty when up to date)."""
    backend = get_backend(_yoyo_url(dsn))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def pending_migrations(dsn: str) -> list[str]:
    backend = get_backend(_yoyo_url(dsn))
    return [m.id for m in backend.to_apply(read_migrations(str(MIGRATIONS_DIR)))]
