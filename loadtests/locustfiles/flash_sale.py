"""Locust scenario: a flash sale. Every user buys one unit of one hot SKU, again and again, with no
think time.

Environment:
- ``SURGE_BENCH_TARGET``: ``surge`` (``POST /inventory/reservations``, one line of quantity 1, a
  fresh uuid4 reservation id per request, owner ``cart:<user>``) or ``baseline`` (``POST /buy``
  ``{"sku", "qty": 1}``). Required.
- ``SURGE_BENCH_SKU``: the hot SKU. Required.
- ``SURGE_BENCH_OUT``: optional path of a JSON file this process writes when the test stops (see
  below). Meant for one Locust process (no master/workers): a second process would overwrite it.

Every answer is reported under a request name that says what it was:
- ``purchase``: a unit was taken (Surge 201, baseline 200); a success;
- ``sold_out``: 409 (from Surge only with problem code ``out_of_stock``), an expected answer
  once stock is gone; a success;
- ``shed``: 429 (Surge shed load before doing any work); a success, counted separately;
- ``unexpected``: anything else, a failure whose error names the HTTP status (``HTTP 503``) or the
  connection error (status 0).

The out file holds this process's own counts of every answer (Locust's ``--reset-stats`` does not
touch them) and the wall-clock times (``time.time()``) of the selling phase::

    {"target", "sku", "pid", "purchases", "sold_out", "shed", "unexpected": {kind: n},
     "first_purchase_sent_at": when the earliest request that became a purchase was sent,
     "first_purchase_at": when the first purchase answer arrived,
     "last_purchase_at": when the last purchase answer arrived,
     "started_at", "stopped_at",
     "stats": {name: {"requests", "failures", "req_per_s", "p50_ms", "p99_ms"}, ..., "Aggregated": {...}}}

``stats`` is Locust's own final statistics per request name, taken when Locust quits (its CSV
files are rewritten only once a second, so they can miss up to the last second of a run), and
so ``purchases / (last_purchase_at - first_purchase_sent_at)`` is the selling rate (times are
``null`` when nothing was bought).
"""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from locust import FastHttpUser, constant, events, tag, task

TARGET = os.environ.get("SURGE_BENCH_TARGET", "")
SKU = os.environ.get("SURGE_BENCH_SKU", "")
OUT = os.environ.get("SURGE_BENCH_OUT")
if TARGET not in ("surge", "baseline"):
    raise ValueError(f"SURGE_BENCH_TARGET must be 'surge' or 'baseline', got {TARGET!r}")
if not SKU:
    raise ValueError("SURGE_BENCH_SKU must name the hot SKU")

PURCHASE_STATUS = 201 if TARGET == "surge" else 200
PATH = "/inventory/reservations" if TARGET == "surge" else "/buy"


class _Tally:
    """This process's counts and selling-phase times (greenlets share one thread, so no locks)."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.purchases = 0
        self.sold_out = 0
        self.shed = 0
        self.unexpected: dict[str, int] = {}
        self.first_sent: float | None = None
        self.first_done: float | None = None
        self.last_done: float | None = None
        self.written = False

    def purchase(self, sent: float, done: float) -> None:
        self.purchases += 1
        if self.first_sent is None or sent < self.first_sent:
            self.first_sent = sent
        if self.first_done is None or done < self.first_done:
            self.first_done = done
        if self.last_done is None or done > self.last_done:
            self.last_done = done

    def as_dict(self, environment: object = None) -> dict:
        return {"stats": _final_stats(environment),
            "target": TARGET, "sku": SKU, "pid": os.getpid(),
            "purchases": self.purchases, "sold_out": self.sold_out, "shed": self.shed,
            "unexpected": dict(self.unexpected),
            "first_purchase_sent_at": self.first_sent, "first_purchase_at": self.first_done,
            "last_purchase_at": self.last_done,
            "started_at": self.started_at, "stopped_at": time.time(),
        }


TALLY = _Tally()


def _entry_figures(entry: object) -> dict:
    n = entry.num_requests
    return {
        "requests": n,
        "failures": entry.num_failures,
        "req_per_s": round(entry.total_rps, 1),
        "p50_ms": entry.get_response_time_percentile(0.5) if n else None,
        "p99_ms": entry.get_response_time_percentile(0.99) if n else None,
    }


def _final_stats(environment: object) -> dict | None:
    stats = getattr(environment, "stats", None)
    if stats is None:
        return None
    out = {entry.name: _entry_figures(entry) for entry in stats.entries.values()}
    out["Aggregated"] = _entry_figures(stats.total)
    return out


def _write_out(environment: object = None) -> None:
    if not OUT:
        return
    path = Path(OUT)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(TALLY.as_dict(environment)))
    tmp.replace(path)
    TALLY.written = True


@events.test_stop.add_listener
def _on_test_stop(environment: object = None, **kwargs: object) -> None:
    _write_out(environment)


@events.quitting.add_listener
def _on_quitting(environment: object = None, **kwargs: object) -> None:
    # test_stop has normally written the file already; write again so late answers are counted.
    _write_out(environment)


class FlashSaleUser(FastHttpUser):
    """One keep-alive connection per user; the next purchase goes out as soon as the last answer arrives."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.cart = f"cart:{uuid.uuid4().hex[:12]}"

    def _body(self) -> dict:
        if TARGET == "surge":
            return {"reservation_id": uuid.uuid4().hex, "owner": self.cart,
                    "lines": [{"sku": SKU, "quantity": 1}], "ttl_s": 600}
        return {"sku": SKU, "qty": 1}

    @tag("flash_sale")
    @task
    def buy_one(self) -> None:
        sent = time.time()
        with self.client.post(PATH, json=self._body(), name="purchase", catch_response=True) as resp:
            done = time.time()
            status = resp.status_code
            if status == PURCHASE_STATUS:
                TALLY.purchase(sent, done)
                resp.success()
                return
            if status == 409 and (TARGET == "baseline" or b"out_of_stock" in (resp.content or b"")):
                TALLY.sold_out += 1
                resp.request_meta["name"] = "sold_out"
                resp.success()
            elif status == 429:
                TALLY.shed += 1
                resp.request_meta["name"] = "shed"
                resp.success()
            else:
                kind = f"HTTP {status}" if status else f"connection error: {type(resp.error).__name__}: {resp.error}"
                TALLY.unexpected[kind] = TALLY.unexpected.get(kind, 0) + 1
                resp.request_meta["name"] = "unexpected"
                resp.failure(kind)
