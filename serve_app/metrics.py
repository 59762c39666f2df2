"""API metrics, emitted through Ray's metrics pipeline.

Metrics recorded inside Serve replicas go through `ray.serve.metrics` (Ray's per-node agent exports
them in Prometheus format); a plain prometheus-client registry in a replica is not scraped by
itself. `/metrics` serves the node agent's text so one URL shows Serve's, Ray's and Surge's series.
Counters are named without `_total`: Ray's exporter appends it.
"""
from __future__ import annotations

from ray.serve import metrics as serve_metrics

LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]


class ApiMetrics:
    def __init__(self) -> None:
        self.requests = serve_metrics.Counter(
            "surge_http_requests", description="HTTP requests handled by the API.",
            tag_keys=("method", "route", "status"),
        )
        self.latency = serve_metrics.Histogram(
            "surge_http_request_duration_seconds", description="HTTP request latency in seconds.",
            boundaries=LATENCY_BUCKETS_S, tag_keys=("method", "route"),
        )

        self.catalog_cache = serve_metrics.Counter(
            "surge_catalog_cache_reads", description="Catalog reads by cache outcome (hit, miss, bypass).",
            tag_keys=("kind", "result"),
        )

    def observe_catalog_cache(self, kind: str, result: str) -> None:
        self.catalog_cache.inc(tags={"kind": kind, "result": result})

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.inc(tags={"method": method, "route": route, "status": str(status)})
        self.latency.observe(seconds, tags={"method": method, "route": route})
