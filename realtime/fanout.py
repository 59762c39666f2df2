"""From the event streams to the hub's topics: what each committed event becomes on which topic.

Every hub process reads every stream itself (XREAD, no consumer group), so hubs side by side each
deliver to their own sockets. State topics' first frames (snapshots) come from PostgreSQL.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter

from realtime.access import user_topic
from realtime.hub import Hub, Snapshot
from storage import live_views
from storage.analytics_store import ANALYTICS_STREAM, record_product_views
from storage.cache import create_redis
from storage.outbox import stream_name
from storage.pool import close_quietly

log = logging.getLogger("surge.hub")

INVENTORY_STREAM, CART_STREAM, ORDER_STREAM = (stream_name(t) for t in ("inventory", "cart", "order"))
STREAMS = (INVENTORY_STREAM, CART_STREAM, ORDER_STREAM, ANALYTICS_STREAM)


class Feeds:
    """What the hub remembers beyond the fan-out: the newest sales summary for new admin subscribers."""

    def __init__(self):
        self.summary: tuple[int, dict] | None = None
        self.views: Counter[str] = Counter()  # product subscriptions (page views) not yet counted in Valkey


def stock_snapshot(pool) -> Snapshot:
    """The committed level of a product topic's SKU, straight from Postgres."""
    async def snapshot(topic: str):
        row = await pool.fetchrow("select sku, on_hand, reserved, version from stock_levels where sku = $1",
                                  topic.removeprefix("product:"))
        if row is None:
            return None
        return row["version"], level_data(row["sku"], row["on_hand"] - row["reserved"], row["on_hand"])

    return snapshot


def snapshots(pool) -> Snapshot:
    """A topic's current committed state: stock levels, carts and orders, from Postgres."""
    stock = stock_snapshot(pool)

    async def snapshot(topic: str):
        if topic.startswith("product:"):
            return await stock(topic)
        if topic.startswith("order:"):
            return await live_views.order_state(pool, topic.removeprefix("order:"))
        if topic.startswith("cart:"):
            state = await live_views.cart_state(pool, topic.removeprefix("cart:"))
            if state is None:
                return None
            skus = [sku for sku, _ in state[1]["lines"]]
            return state[0], cart_view(state[1], await live_views.prices(pool, skus), time.time())
        return None

    return snapshot


def level_data(sku: str, available: int, on_hand: int) -> dict:
    return {"sku": sku, "available": available, "on_hand": on_hand, "sold_out": available <= 0}


ALERTS = ("LowStock", "SoldOut", "BackInStock")


def order_feed_item(event_type: str, p: dict) -> dict:
    item = {"kind": "order", "type": event_type, "number": p["number"], "status": p["status"],
            "total_minor": p["total_minor"], "currency": p["currency"], "at": p["occurred_at"]}
    if p.get("tracking_number"):
        item.update(carrier=p.get("carrier"), tracking_number=p["tracking_number"])
    return item


def cart_view(p: dict, prices: dict[str, tuple[str, int, str]], now: float) -> dict:
    """A cart topic's frame: lines at the catalog's current prices, hold countdowns, the subtotal.
    Coupons, shipping and the final total are the API's (GET /cart): pricing rules live in actors/."""
    holds = {sku: float(at) for sku, at in p.get("holds") or []}
    lines, subtotal, currency = [], 0, "USD"
    for sku, quantity in p.get("lines") or []:
        name, unit, currency = prices.get(sku, (sku, 0, currency))
        subtotal += unit * quantity
        hold = holds.get(sku)
        lines.append({"sku": sku, "name": name, "quantity": quantity, "unit_price_minor": unit,
                      "line_total_minor": unit * quantity,
                      "hold": None if hold is None else {"expires_at": hold, "seconds_left": max(0, int(hold - now))}})
    return {"id": p["cart_id"], "version": p["version"], "lines": lines, "units": sum(l["quantity"] for l in lines),
            "subtotal_minor": subtotal, "currency": currency, "coupon_code": p.get("coupon_code")}


class EventFanout:
    """Turns committed events (and analytics summaries) into frames on the hub's topics. Frames that
    need a query (a cart's prices, an order's current state) are built only for watched topics."""

    def __init__(self, hub: Hub, pool=None, feeds: Feeds | None = None):
        self.hub, self.pool, self.feeds = hub, pool, feeds or Feeds()

    async def dispatch(self, stream: str, entries: list[tuple[str, dict]]) -> None:
        if stream == ANALYTICS_STREAM:
            for _entry_id, fields in entries:
                summary = json.loads(fields["summary"])
                # a summary is a snapshot "as of" the newest frame: it shares that frame's seq rather
                # than inventing one that a later outbox id would repeat
                seq = max(int(fields.get("seq") or 0), self.hub.last_seq("admin"),
                          self.feeds.summary[0] if self.feeds.summary else 0)
                self.feeds.summary = (seq, {"kind": "sales", **summary})
                self.hub.publish("admin", self.feeds.summary[1], seq=seq)
            return
        carts: list[dict] = []
        orders: dict[str, None] = {}  # watched order topics' numbers, in first-seen order, read in one query
        levels: dict[str, dict] = {}  # sku -> its newest level in this batch
        for _entry_id, fields in entries:
            kind, seq, payload = fields.get("type"), int(fields.get("id") or 0), json.loads(fields["payload"])
            if kind == "StockLevelChanged":
                # latest wins: a batch that holds several levels of one SKU (the hub fell behind a
                # burst) costs one pass over that product's sockets, not one per level
                newest = levels.get(payload["sku"])
                if newest is None or payload["version"] > newest["version"]:
                    levels[payload["sku"]] = payload
            elif kind in ALERTS:
                self.hub.publish("admin", {"kind": "alert", "type": kind, "sku": payload["sku"],
                                           "available": payload.get("available", 0), "at": payload["occurred_at"]}, seq=seq)
            elif kind == "CartChanged":
                carts.append(payload)
                if payload.get("customer_id"):
                    self.hub.publish(user_topic(payload["customer_id"]), {
                        "kind": "cart", "id": payload["cart_id"], "version": payload["version"],
                        "units": sum(q for _, q in payload["lines"])}, seq=seq, label="user")
            elif stream == ORDER_STREAM and "number" in payload:
                item = order_feed_item(kind, payload)
                self.hub.publish("admin", item, seq=seq)
                if payload.get("customer_id"):
                    self.hub.publish(user_topic(payload["customer_id"]), item, seq=seq, label="user")
                if self.pool is not None and payload["number"] not in orders \
                        and self.hub.watched(f"order:{payload['number']}"):
                    orders[payload["number"]] = None
        for sku, payload in levels.items():
            self.hub.publish(f"product:{sku}", level_data(sku, payload["available"], payload["on_hand"]),
                             seq=payload["version"])
        if orders:  # each frame is the order's whole current state: one read after the batch is enough
            states = await live_views.order_states(self.pool, list(orders))
            for number in orders:
                if number in states:
                    self.hub.publish(f"order:{number}", states[number][1], seq=states[number][0])
        watched = [c for c in carts if self.hub.watched(f"cart:{c['cart_id']}")]
        if watched:
            skus = sorted({sku for c in watched for sku, _ in c["lines"]})
            prices = await live_views.prices(self.pool, skus) if self.pool is not None and skus else {}
            now = time.time()
            for c in watched:
                self.hub.publish(f"cart:{c['cart_id']}", cart_view(c, prices, now), seq=c["version"])


async def consume_events(fanout: EventFanout, redis_url: str) -> None:
    """Fan committed events out to subscribers. Every hub process reads every stream itself (XREAD,
    no consumer group), so hubs side by side each deliver to their own sockets. Starts at the
    streams' ends: a subscriber gets the current state from a snapshot; reconnects if Valkey drops."""
    last = {stream: "$" for stream in STREAMS}
    while True:
        # a read timeout above the 1 s block: a half-open connection fails and reconnects instead of hanging
        client = create_redis(redis_url, timeout_s=5.0, decode_responses=True)
        try:
            while True:
                batches = await client.xread(last, block=1000, count=500)
                for stream, entries in batches or []:
                    last[stream] = entries[-1][0]
                    try:
                        await fanout.dispatch(stream, entries)
                    except (KeyError, ValueError, TypeError) as exc:  # a malformed entry must not stop the feed
                        log.error("stream entry not understood; skipped", extra={"stream": stream, "error": repr(exc)})
        except Exception as exc:  # Valkey away: keep the hub up, try again
            log.warning("event streams unavailable; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(1)
        finally:
            await close_quietly(client.aclose())


async def count_views(feeds: Feeds, redis_url: str) -> None:
    """Product subscriptions are the funnel's page views: counted in Valkey once a second, in one
    round trip, not one per subscribe."""
    redis = create_redis(redis_url)
    try:
        while True:
            await asyncio.sleep(1.0)
            if feeds.views:
                views, feeds.views = feeds.views, Counter()
                try:
                    await record_product_views(redis, views, time.time())
                except Exception as exc:  # Valkey away: these views are lost, the hub stays up
                    log.warning("product views not counted", extra={"error": repr(exc)})
    finally:
        await redis.aclose()
