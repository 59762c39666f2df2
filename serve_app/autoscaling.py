"""Serve autoscaling for the Api deployment that counts the replica listener's requests.

Serve's own policy scales on the requests Serve routed (its ingress and deployment handles). The
flash sale comes in through each replica's own listener (`serve_app/replica_listener.py`), which
Serve never sees: under its policy a replica busy with the listener looks idle, and a sale would
never scale the API out (and could scale it in). So each Api replica reports its listener's
requests in flight (`Api.record_autoscaling_stats`), and `listener_aware_policy` adds them to
Serve's count before the same rule as Serve's default: replicas wanted = requests in flight
through both doors / `target_ongoing_requests`. Serve applies `min_replicas`/`max_replicas`, the
scaling factors and the up/down delays around it, as it does for any custom policy.

In a Serve config file: `autoscaling_config: {..., policy: {policy_function:
"serve_app.autoscaling:listener_aware_policy"}}`; `SURGE_API_AUTOSCALING` does this for `surge up`.
"""
from __future__ import annotations

from typing import Any

from ray.serve.config import AutoscalingContext

# the custom metric each Api replica reports (its listener's requests in flight, 0 without one)
LISTENER_ONGOING = "listener_ongoing_requests"
POLICY = f"{__name__}:listener_aware_policy"


def listener_requests(ctx: AutoscalingContext) -> float:
    """The listener's requests in flight over the running replicas (each one's look-back average)."""
    per_replica = (ctx.aggregated_metrics or {}).get(LISTENER_ONGOING) or {}
    return float(sum(per_replica.values()))


def listener_aware_policy(ctx: AutoscalingContext) -> tuple[float, dict[str, Any]]:
    if ctx.current_num_replicas == 0:  # scaled to zero: no listener either; Serve's cold start decides
        return ctx.target_num_replicas, {}
    ongoing = ctx.total_num_requests + listener_requests(ctx)
    return ongoing / ctx.config.get_target_ongoing_requests(), {}
