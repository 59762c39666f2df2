"""Bring-up settings: the data directory, embedded ports and the switches to external services."""
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SurgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SURGE_", extra="ignore", populate_by_name=True)

    data_dir: Path = Path(".surge")
    # Embedded servers listen on loopback at these ports when no external URL is given.
    pg_port: int = Field(default=54329, ge=1, le=65535)
    valkey_port: int = Field(default=63790, ge=1, le=65535)
    stripe_port: int = Field(default=8420, ge=1, le=65535)
    hub_host: str = "127.0.0.1"
    hub_port: int = Field(default=8765, ge=1, le=65535)
    # Hub processes sharing hub_port (SO_REUSEPORT; the kernel spreads new sockets over them): one per
    # core a node gives the hub. Each holds fewer sockets, so its passes are shorter, and so is the
    # full garbage collection of its periodic reclaim (0.2-0.34 s at 10,000 sockets: README).
    hub_processes: int = Field(default=1, ge=1, le=64)
    # Origins whose pages may open hub sockets, besides the API's own (comma-separated in the env).
    hub_allowed_origins: list[str] = Field(default_factory=list)
    ray_address: str | None = Field(default=None, alias="RAY_ADDRESS")
    stripe_api_base: str | None = Field(default=None, alias="STRIPE_API_BASE")
    stripe_api_key: str = Field(default="sk_test_surge_local", alias="STRIPE_API_KEY")
    log_level: str = "INFO"
    # Nice value of the Ray workers of a Ray that `surge up` starts itself. Ray's default (15) is
    # for a node that runs only Ray: it yields to the driver. Here the API replicas and the owners
    # share the machine with PostgreSQL, Valkey and HAProxy, and at 15 they get ~1/30 of a nice-0
    # process's CPU share whenever the box is busy, so they queue behind their own database.
    ray_worker_niceness: int = Field(default=0, ge=-20, le=19)
    seed_demo: bool = True
