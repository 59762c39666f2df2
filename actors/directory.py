"""The one module that finds owner actors.

Naming, get-or-create, handle caching, and retry across an owner's restart live here; nobody else
calls `ray.get_actor`. Owners are named, detached and restart forever (`max_restarts=-1`); Ray
never re-runs a method on its own (`max_task_retries=0`) because a re-run may repeat an effect.
Instead `call` retries an *idempotent* command (every mutating command carries its own id) until
the owner is back or a deadline passes.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError

from actors.domain.errors import Unavailable
from actors.routing import shard_for
from actors.settings import ActorSettings

log = logging.getLogger("surge.directory")

RETRYABLE = (RayActorError, ActorUnavailableError, ActorDiedError)
KINDS = ("inventory", "relay", "cart", "order", "notifier", "analytics", "catalog")  # every kind of long-lived actor, for start-up and health


@dataclass(frozen=True)
class OwnerConfig:
    """What every owner actor is constructed with (wired once, at the composition root)."""

    database_url: str
    redis_url: str | None
    settings: ActorSettings
    log_level: str = "INFO"
    # payments (the order pipelines talk to Stripe, or to localstripe at `stripe_api_base`)
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    elasticsearch_url: str | None = None  # search backend; unset = PostgreSQL


def owner_name(kind: str, index: int) -> str:
    return f"{kind}-{index}"


class ActorDirectory:
    """Handles to the owner actors of one Surge deployment, created on first use."""

    def __init__(self, config: OwnerConfig):
        self.config = config
        self.settings = config.settings
        self._handles: dict[tuple[str, int], Any] = {}

    # --- kinds ---------------------------------------------------------------------------
    def _actor_class(self, kind: str):
        if kind == "inventory":
            from actors.inventory_shard import InventoryShard

            return InventoryShard, self.settings.inventory_shards
        if kind == "relay":
            from actors.event_relay import EventRelay

            return EventRelay, 1
        if kind == "cart":
            from actors.cart_shard import CartShard

            return CartShard, self.settings.cart_shards
        if kind == "order":
            from actors.order_pipeline import OrderPipeline

            return OrderPipeline, self.settings.order_pipelines
        if kind == "notifier":
            from actors.notifier import Notifier

            return Notifier, 1
        if kind == "analytics":
            from actors.analytics import Analytics

            return Analytics, 1
        if kind == "catalog":
            from actors.catalog_events import CatalogEventConsumer

            return CatalogEventConsumer, 1
        raise KeyError(kind)

    def shard_count(self, kind: str) -> int:
        return self._actor_class(kind)[1]

    def handle(self, kind: str, index: int):
        key = (kind, index)
        handle = self._handles.get(key)
        if handle is None:
            cls, count = self._actor_class(kind)
            if not 0 <= index < count:
                raise IndexError(f"{kind} shard {index} of {count}")
            handle = (
                ray.remote(cls)
                .options(
                    name=owner_name(kind, index),
                    namespace=self.settings.namespace,
                    lifetime="detached",
                    get_if_exists=True,
                    max_restarts=-1,
                    max_task_retries=0,
                    max_concurrency=self.settings.actor_max_concurrency,
                    num_cpus=self.settings.actor_num_cpus,
                )
                .remote(self.config, index, count)
            )
            self._handles[key] = handle
        return handle

    def all_handles(self, kind: str) -> list[tuple[int, Any]]:
        return [(i, self.handle(kind, i)) for i in range(self.shard_count(kind))]

    def forget(self, kind: str, index: int) -> None:
        self._handles.pop((kind, index), None)

    # --- calls ---------------------------------------------------------------------------
    async def call(self, kind: str, index: int, method: str, *args: Any, deadline_s: float = 15.0,
                   retry: bool = True, **kwargs: Any) -> Any:
        """Call a method, retrying while the owner restarts, up to `deadline_s`.

        Only idempotent commands may be retried (`retry=True`): the failed attempt may have taken
        effect. Raises `Unavailable` when the owner does not come back in time (or at once when
        `retry=False`).
        """
        give_up = time.monotonic() + deadline_s
        delay = 0.05
        while True:
            handle = self.handle(kind, index)
            try:
                return await getattr(handle, method).remote(*args, **kwargs)
            except RETRYABLE as exc:
                if not retry or time.monotonic() >= give_up:
                    raise Unavailable(f"{kind} owner {index} is not reachable", shard=index) from exc
                log.warning("owner unavailable, retrying", extra={"kind": kind, "shard": index, "error": type(exc).__name__})
                self.forget(kind, index)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def call_key(self, kind: str, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """`call` on the owner of `key` (a cart id for carts and orders)."""
        return await self.call(kind, shard_for(key, self.shard_count(kind)), method, *args, **kwargs)

    async def ping_all(self, timeout_s: float = 3.0) -> dict[str, Any]:
        """State of every owner: {"inventory-0": {"ok": True, ...}, ...}; never raises."""
        async def probe(kind: str, index: int, handle) -> dict[str, Any]:
            try:
                return {"ok": True, **await asyncio.wait_for(handle.ping.remote(), timeout_s)}
            except (asyncio.TimeoutError, GetTimeoutError):
                return {"ok": False, "error": "timeout"}
            except Exception as exc:  # any failure is a "down" answer, not a crash of the probe
                self.forget(kind, index)
                return {"ok": False, "error": type(exc).__name__}

        targets = [(kind, index, handle) for kind in KINDS for index, handle in self.all_handles(kind)]
        answers = await asyncio.gather(*(probe(*t) for t in targets))  # all at once: one timeout, not one per owner
        return {owner_name(kind, index): answer for (kind, index, _), answer in zip(targets, answers)}

    def ensure_started(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Create every owner (blocking; for bring-up) and wait until each has loaded its slice."""
        refs = {owner_name(k, i): h.ping.remote() for k in KINDS for i, h in self.all_handles(k)}
        return dict(zip(refs, ray.get(list(refs.values()), timeout=timeout_s)))
