"""CartShard: the Ray actor that owns the carts hashing to it (virtual actors on Ray).

Carts load lazily from Postgres on first use and stay in memory (least recently used ones are
dropped past `MAX_CACHED`). Each command runs under its cart's lock (no interleaving between read
and write of one cart), changes memory, and is answered only after the group commit that made the
cart and its `CartChanged` event durable. A failed commit drops the cart from memory, so the next
command reloads the truth from the database.

Flash-sale lines hold stock: the shard reserves before it changes the line (a new reservation id
per change, so a hold is never resized in place), and releases the previous hold only after the
cart that no longer points to it is durable. A crash in between leaves a hold nobody points to,
which the inventory shard expires: stock is never lost, only held a little longer.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import OrderedDict
from typing import Any

from actors.batching import Batcher
from actors.directory import ActorDirectory, OwnerConfig
from actors.domain.cart import Cart, Hold, check_quantity, plan_holds
from actors.domain.errors import InvalidTransition, Unavailable, error_for
from actors.domain.events import CartChanged, event_payload, event_type
from actors.inventory_client import InventoryClient
from actors.keyed_locks import KeyedLocks
from actors.process import configure_owner_process
from storage import cart_store
from storage.cart_store import CartBatch
from storage.outbox import OutboxRow
from storage.pool import create_pool

log = logging.getLogger("surge.carts")

MAX_CACHED = 50_000


def cart_view(cart: Cart) -> dict[str, Any]:
    return {"id": cart.id, "customer_id": cart.customer_id, "status": cart.status, "currency": cart.currency,
            "version": cart.version, **cart.to_doc()}


class CartShard:
    """Owns carts where `shard_for(cart_id, count) == index`. Constructed by `ActorDirectory`."""

    async def __init__(self, config: OwnerConfig, index: int, count: int):
        configure_owner_process(config, f"cart-{index}")
        self.index, self.count, self.config = index, count, config
        self.pool = await create_pool(config.database_url, min_size=1, max_size=4)
        # holds are exact idempotent calls: no sold-out shortcut from memory here
        self.inventory = InventoryClient(ActorDirectory(config), soldout_ttl_s=0)
        self.carts: OrderedDict[str, Cart] = OrderedDict()
        self._locks = KeyedLocks()
        self._pending: dict[str, Cart] = {}  # changed since the last flush started
        self._committer: Batcher = Batcher(self._flush)
        self.flushes = 0

    # --- memory and persistence --------------------------------------------------------------
    def _lock(self, cart_id: str):
        """Serialises the commands of one cart; see `KeyedLocks`."""
        return self._locks.hold(cart_id)

    async def _get(self, cart_id: str, create_for: str | None = None, create: bool = True) -> Cart | None:
        cart = self.carts.get(cart_id)
        if cart is None:
            row = await cart_store.load(self.pool, cart_id)
            if row is not None:
                cart = Cart.from_doc(row["id"], row["customer_id"], row["currency"].strip(), row["status"], row["version"], row["doc"])
            elif not create:
                return None
            else:
                cart = Cart(cart_id, customer_id=create_for)
            self.carts[cart_id] = cart
            while len(self.carts) > MAX_CACHED:
                self.carts.popitem(last=False)
        self.carts.move_to_end(cart_id)
        return cart

    async def _flush(self, items: list[tuple[str, CartChanged]]) -> None:
        changed, self._pending = self._pending, {}
        batch = CartBatch()
        now = time.time()
        for cart in changed.values():
            batch.rows[cart.id] = {"id": cart.id, "customer_id": cart.customer_id, "status": cart.status,
                                   "currency": cart.currency, "doc": cart.to_doc(), "version": cart.version, "updated_at": now}
        for _, e in items:
            batch.outbox.append(OutboxRow(uuid.uuid4(), e.topic, e.key, event_type(e), event_payload(e), e.occurred_at))
        try:
            written = await cart_store.commit_batch(self.pool, batch)
        except Exception as exc:
            for cart_id in changed:
                self.carts.pop(cart_id, None)  # reload the truth on next use
            log.error("cart commit failed", extra={"shard": self.index, "error": repr(exc)})
            raise Unavailable("cart commit failed; retry") from exc
        if written != len(batch.rows):
            for cart_id in changed:
                self.carts.pop(cart_id, None)
            raise Unavailable("a newer version of a cart exists; retry")
        self.flushes += 1
        return None

    async def _save(self, cart: Cart) -> dict[str, Any]:
        self._pending[cart.id] = cart
        event = CartChanged(cart.id, cart.customer_id, cart.version,
                            tuple((l.sku, l.quantity) for l in cart.lines.values()),
                            tuple((sku, l.expires_at) for sku, l in cart.lines.items() if l.holds),
                            cart.coupon_code, time.time())
        await self._committer.submit((cart.id, event))
        return cart_view(cart)

    async def _drop_expired(self, cart: Cart) -> bool:
        # the inventory shard expired the reservations itself: only the cart's copy is left to fix
        return bool(cart.drop_expired_holds(time.time()))

    def _check_active(self, cart: Cart) -> None:
        if cart.status != "active":
            raise InvalidTransition(f"This cart is {cart.status}.", cart_id=cart.id)

    async def _release(self, holds: list[Hold]) -> None:
        for h in holds:
            try:
                await self.inventory.release(h.reservation_id)
            except Exception as exc:  # the hold expires by itself; releasing early is a courtesy
                log.warning("releasing a hold failed", extra={"reservation_id": h.reservation_id, "error": repr(exc)})

    # --- commands ----------------------------------------------------------------------------
    async def get(self, cart_id: str) -> dict[str, Any] | None:
        async with self._lock(cart_id):
            cart = await self._get(cart_id, create=False)
            if cart is None:
                return None
            if await self._drop_expired(cart):
                return await self._save(cart)
            return cart_view(cart)

    async def set_item(self, cart_id: str, customer_id: str | None, sku: str, quantity: int, *, add: bool = False,
                       flash: bool = False, cap: int | None = None, hold_ttl_s: float | None = None) -> dict[str, Any]:
        """Put `quantity` units of `sku` in the cart (`add`: on top of what is there). A flash-sale
        SKU is held in the inventory first; refusal (sold out, cap) raises and changes nothing."""
        async with self._lock(cart_id):
            cart = await self._get(cart_id, create_for=customer_id)
            line = cart.lines.get(sku)
            target = quantity + (line.quantity if add and line is not None else 0)
            view, released = await self._put_line(cart, sku, target, flash, cap, hold_ttl_s)
        await self._release(released)  # after the cart that no longer points to them is durable
        return view

    async def _put_line(self, cart: Cart, sku: str, target: int, flash: bool, cap: int | None,
                        hold_ttl_s: float | None) -> tuple[dict[str, Any], list[Hold]]:
        """Under the cart's lock: the line at `target` units, holding a flash SKU's added units; returns
        the saved view and the holds to release once the lock is let go."""
        self._check_active(cart)
        await self._drop_expired(cart)
        line = cart.lines.get(sku)
        check_quantity(target, cap)
        plan = plan_holds(line.holds if line is not None else [], target) if flash else None
        holds: list[Hold] = []
        if plan is not None:
            if plan.release and plan.reserve:
                await self._release(plan.release)  # a split hold: its units go back before the remainder is re-held
            if plan.reserve:
                rid = f"hold:{cart.id}:{sku}:{uuid.uuid4().hex[:12]}"
                outcome = await self.inventory.reserve(rid, f"cart:{cart.id}", [(sku, plan.reserve)],
                                                       hold_ttl_s or self.config.settings.cart_hold_ttl_s,
                                                       customer_id=cart.customer_id)
                if not outcome.held:
                    if plan.release:  # the split hold is gone: the line keeps what is still held
                        kept = sum(h.quantity for h in plan.keep)
                        if kept:
                            cart.set_line(sku, kept, time.time(), holds=plan.keep)
                        else:
                            cart.remove_line(sku)
                        await self._save(cart)
                    raise error_for(outcome.code or "out_of_stock", outcome.detail, sku=sku,
                                    available=outcome.available.get(sku, 0))
                holds = [*plan.keep, Hold(rid, plan.reserve, outcome.expires_at)]
            else:
                holds = plan.keep
        cart.set_line(sku, target, time.time(), cap=cap, holds=holds)
        view = await self._save(cart)
        return view, (plan.release if plan is not None and not plan.reserve else [])

    async def remove_item(self, cart_id: str, sku: str) -> dict[str, Any]:
        async with self._lock(cart_id):
            cart = await self._get(cart_id)
            self._check_active(cart)
            line = cart.remove_line(sku)
            view = await self._save(cart)
        await self._release(line.holds)
        return view

    async def save_for_later(self, cart_id: str, sku: str) -> dict[str, Any]:
        async with self._lock(cart_id):
            cart = await self._get(cart_id)
            self._check_active(cart)
            line = cart.save_for_later(sku)
            view = await self._save(cart)
        await self._release(line.holds)
        return view

    async def move_to_cart(self, cart_id: str, customer_id: str | None, sku: str, *, flash: bool = False,
                           cap: int | None = None, hold_ttl_s: float | None = None) -> dict[str, Any]:
        async with self._lock(cart_id):  # one lock from reading the saved quantity to writing the line
            cart = await self._get(cart_id)
            quantity = cart.saved.get(sku)
            if quantity is None:
                raise error_for("not_found", "This item is not saved for later.", sku=sku)
            view, released = await self._put_line(cart, sku, min(quantity, cap or quantity), flash, cap, hold_ttl_s)
        await self._release(released)
        return view

    async def set_coupon(self, cart_id: str, code: str | None) -> dict[str, Any]:
        async with self._lock(cart_id):
            cart = await self._get(cart_id)
            self._check_active(cart)
            cart.set_coupon(code)
            return await self._save(cart)

    async def attach(self, cart_id: str, customer_id: str) -> dict[str, Any]:
        """Make a fresh cart the customer's (idempotent)."""
        async with self._lock(cart_id):
            cart = await self._get(cart_id, create_for=customer_id)
            if cart.customer_id == customer_id:
                if cart.version == 0:
                    cart._changed()
                    return await self._save(cart)
                return cart_view(cart)
            raise InvalidTransition("This cart belongs to someone else.", cart_id=cart_id)

    async def take_guest(self, guest_id: str) -> dict[str, Any] | None:
        """Empty a guest cart into a merge: returns its content and marks it merged."""
        async with self._lock(guest_id):
            cart = await self._get(guest_id, create=False)
            if cart is None or cart.status != "active" or cart.customer_id is not None:
                return None
            await self._drop_expired(cart)
            content = Cart.from_doc(cart.id, None, cart.currency, cart.status, cart.version, cart.to_doc())
            cart.lines.clear()
            cart.saved.clear()
            cart.status = "merged"
            cart._changed()
            await self._save(cart)
            return cart_view(content)

    async def absorb(self, cart_id: str, customer_id: str, guest: dict[str, Any], caps: dict[str, int | None]) -> dict[str, Any]:
        """Merge a guest cart's content (from `take_guest`) into the customer's cart."""
        async with self._lock(cart_id):
            cart = await self._get(cart_id, create_for=customer_id)
            other = Cart.from_doc(guest["id"], None, guest["currency"], "active", guest["version"], guest)
            dropped = cart.absorb(other, time.time(), caps)
            view = await self._save(cart)
        await self._release(dropped)
        return view

    async def checked_out(self, cart_id: str, lines: list[tuple[str, int]]) -> dict[str, Any] | None:
        """The order for this cart was paid: take its lines out of the cart (their holds were
        committed by the order). Lines added after checkout started stay."""
        async with self._lock(cart_id):
            cart = await self._get(cart_id, create=False)
            if cart is None:
                return None
            changed = cart.take_ordered(lines)
            return await self._save(cart) if changed else cart_view(cart)

    async def ping(self) -> dict:
        return {"ready": True, "shard": self.index, "pid": os.getpid(), "carts": len(self.carts), "flushes": self.flushes}
