"""Serve settings for the API deployment and its HTTP ingress."""
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SURGE_", extra="ignore", populate_by_name=True)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    # See README "Performance": measured options for Serve's ingress on this box.
    ingress: Literal["haproxy", "direct", "proxy"] = "haproxy"
    # Side listeners of the HAProxy ingress (all bound to loopback by cluster/haproxy-loopback.sh).
    ingress_drain_s: float = Field(default=2.0, ge=0)
    haproxy_threads: int = Field(default=2, ge=1)
    haproxy_stats_port: int = Field(default=18404, ge=1, le=65535)
    haproxy_metrics_port: int = Field(default=19101, ge=1, le=65535)
    fallback_proxy_port: int = Field(default=18500, ge=1, le=65535)
    fallback_grpc_port: int = Field(default=19500, ge=1, le=65535)
    api_replicas: int = Field(default=1, ge=1)
    api_max_ongoing_requests: int = Field(default=1000, ge=1)
    api_num_cpus: float = Field(default=0.0, ge=0)
    access_log: bool = False
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # Bearer token for admin and internal routes until accounts exist; unset = admin routes closed.
    admin_token: str | None = Field(default=None, min_length=24)
    # Verifies POST /webhooks/stripe (Stripe's signature scheme); unset = webhooks refused.
    stripe_webhook_secret: str | None = Field(default=None, min_length=16)
    # How long a replica may answer "sold out" from its own memory without asking the owner.
    # Reservations in flight per replica before the API sheds load with 429 + Retry-After.
    reserve_max_in_flight: int = Field(default=2000, ge=1)
    soldout_ttl_s: float = Field(default=0.25, ge=0, le=5)
