"""Everything a replica's handlers need, built once per replica (cosmicpython's bootstrap)."""
from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

from actors.directory import ActorDirectory, OwnerConfig
from actors.inventory_client import InventoryClient
from serve_app.overload import InFlightLimiter
from serve_app.settings import ServeSettings
from storage.cache import create_redis
from storage.pool import create_pool


@dataclass(frozen=True)
class ApiConfig:
    """Wired at the composition root (`cluster/`) and passed to the deployment constructor."""

    owners: OwnerConfig
    serve: ServeSettings
    metrics_url: str | None = None  # this node's Ray metrics agent, served at /metrics
    hub_url: str | None = None
    version: str = "0.1.0"


@dataclass
class AppContext:
    config: ApiConfig
    pool: asyncpg.Pool
    redis: aioredis.Redis
    directory: ActorDirectory
    inventory: InventoryClient
    reserve_limiter: InFlightLimiter
    extras: dict = field(default_factory=dict)

    @classmethod
    async def create(cls, config: ApiConfig) -> "AppContext":
        pool = await create_pool(config.owners.database_url, min_size=1, max_size=10)
        redis = create_redis(config.owners.redis_url) if config.owners.redis_url else None
        directory = ActorDirectory(config.owners)
        return cls(config=config, pool=pool, redis=redis, directory=directory,
                   inventory=InventoryClient(directory, soldout_ttl_s=config.serve.soldout_ttl_s),
                   reserve_limiter=InFlightLimiter(config.serve.reserve_max_in_flight))

    async def close(self) -> None:
        await self.pool.close()
        if self.redis is not None:
            await self.redis.aclose()
