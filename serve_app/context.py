"""Everything a replica's handlers need, built once per replica (cosmicpython's bootstrap)."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

from actors.directory import ActorDirectory, OwnerConfig
from actors.inventory_client import InventoryClient
from actors.payments import PaymentGateway
from serve_app.accounts import Accounts
from serve_app.overload import InFlightLimiter
from serve_app.ratelimit import RateLimiter
from serve_app.settings import ServeSettings
from storage.cache import create_redis
from storage.catalog_cache import CatalogCache
from storage.catalog_store import CategorySource
from storage.search import create_backend
from storage.search.postgres import create_search_pool
from storage.mailbox import Mailbox
from storage.pool import create_pool
from storage.settings import AuthSettings
from storage.signed_ids import CART_PURPOSE, ORDER_PURPOSE, WAITING_ROOM_PURPOSE, CartTokens, OrderTokens, derived_secret
from storage.smtp import SmtpSender
from storage.waiting_room import WaitingRoom


log = logging.getLogger("surge.api")

@dataclass(frozen=True)
class ApiConfig:
    """Wired at the composition root (`cluster/`) and passed to the deployment constructor."""

    owners: OwnerConfig
    serve: ServeSettings
    metrics_url: str | None = None  # this node's Ray metrics agent, served at /metrics
    hub_url: str | None = None
    version: str = "0.1.0"
    auth: AuthSettings = field(default_factory=AuthSettings)


@dataclass
class AppContext:
    config: ApiConfig
    pool: asyncpg.Pool
    redis: aioredis.Redis
    directory: ActorDirectory
    inventory: InventoryClient
    reserve_limiter: InFlightLimiter
    waiting_room: WaitingRoom | None = None
    flash_skus: "FlashSkus | None" = None
    cart_tokens: "CartTokens | None" = None
    order_tokens: "OrderTokens | None" = None
    gateway: PaymentGateway | None = None
    catalog: "CatalogReads | None" = None
    rate_limiter: "RateLimiter | None" = None
    accounts: "Accounts | None" = None

    @classmethod
    async def create(cls, config: ApiConfig) -> "AppContext":
        pool = await create_pool(config.owners.database_url, min_size=1, max_size=10)
        redis = create_redis(config.owners.redis_url) if config.owners.redis_url else None
        directory = ActorDirectory(config.owners)
        from serve_app.catalog_reads import CatalogReads

        categories = CategorySource(pool)
        search_pool = None if config.owners.elasticsearch_url else await create_search_pool(config.owners.database_url)
        catalog = CatalogReads(pool, CatalogCache(redis), create_backend(
            pool, config.owners.elasticsearch_url, categories=categories, search_pool=search_pool), categories)
        return cls(config=config, pool=pool, redis=redis, directory=directory,
                   inventory=InventoryClient(directory, soldout_ttl_s=config.serve.soldout_ttl_s),
                   reserve_limiter=InFlightLimiter(config.serve.reserve_max_in_flight),
                   waiting_room=WaitingRoom(redis, _derived(config, WAITING_ROOM_PURPOSE)) if redis is not None else None,
                   flash_skus=FlashSkus(pool), catalog=catalog,
                   cart_tokens=CartTokens(_derived(config, CART_PURPOSE)),
                   order_tokens=OrderTokens(_derived(config, ORDER_PURPOSE)),
                   gateway=PaymentGateway(config.owners.stripe_api_key or "sk_test_surge_local",
                                          api_base=config.owners.stripe_api_base,
                                          webhook_secret=config.serve.stripe_webhook_secret),
                   **accounts_parts(config, pool))

    async def close(self) -> None:
        if self.catalog is not None:
            await self.catalog.search_backend.close()
        await self.pool.close()
        if self.gateway is not None:
            await self.gateway.aclose()
        if self.redis is not None:
            await self.redis.aclose()




def _derived(config: ApiConfig, purpose: bytes) -> str:
    """A signing secret per purpose, derived from the deployment's secret (the JWT key); the hub
    derives the same one (`storage/signed_ids.py`)."""
    return derived_secret(config.auth.jwt_secret, purpose)


class FlashSkus:
    """Which SKUs belong to products in flash-sale mode: a copy refreshed from Postgres every few
    seconds, so the hot path asks memory, not the database. Only the first load is awaited (single
    flight: a crowd shares one query); later a stale copy answers at once while one background
    query refreshes it, and a failed refresh keeps the old copy, so a database hiccup never fails a
    reservation the inventory owner could grant."""

    def __init__(self, pool: asyncpg.Pool, max_age_s: float = 5.0):
        self.pool = pool
        self.max_age_s = max_age_s
        self._skus: frozenset[str] | None = None
        self._loaded_at = 0.0
        self._refresh: asyncio.Task | None = None
        self._sold_out: dict[str, bool] = {}  # last sold-out flag this replica published per SKU

    async def contains(self, sku: str) -> bool:
        if time.monotonic() - self._loaded_at > self.max_age_s and self._refresh is None:
            self._refresh = asyncio.create_task(self._load())
        if self._skus is None:  # nothing to answer from yet
            await asyncio.shield(self._refresh)
        return sku in self._skus

    async def _load(self) -> None:
        try:
            rows = await self.pool.fetch(
                "select v.sku from variants v join products p on p.id = v.product_id where p.flash_sale")
            self._skus = frozenset(r["sku"] for r in rows)
            self._loaded_at = time.monotonic()
        except Exception as exc:
            if self._skus is None:
                raise  # the first load has no old copy to fall back on: the caller sees the fault
            log.warning("refreshing flash-sale SKUs failed; keeping the old copy", extra={"error": repr(exc)})
        finally:
            self._refresh = None

    def sold_out_changed(self, sku: str, sold_out: bool) -> bool:
        """True when this replica has not yet published this sold-out state for the SKU."""
        if self._sold_out.get(sku) is sold_out:
            return False
        self._sold_out[sku] = sold_out
        return True


def accounts_parts(config: ApiConfig, pool: asyncpg.Pool) -> dict:
    """Accounts and rate limits (fails fast on missing or placeholder secrets)."""
    limiter = RateLimiter(config.owners.redis_url, config.serve.rate_limits)
    owners = config.owners.settings  # the Notifier's mail settings: the reset mail goes out the same way
    mailbox = Mailbox(pool, owners.mailbox_dir)
    sender = SmtpSender(owners.smtp_url) if owners.smtp_url else None
    return {"rate_limiter": limiter, "accounts": Accounts(pool, config.auth, limiter, mailbox, sender)}
