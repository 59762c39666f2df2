"""Serve settings for the API deployment and its HTTP ingress."""
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Rate limits (`limits` notation), by name; SURGE_RATE_LIMITS='{"search": "50/second"}' overrides some.
DEFAULT_RATE_LIMITS = {
    "signin_account": "5/minute",    # failed sign-ins per account
    "signin_address": "30/minute",   # sign-in attempts per client address
    "register": "10/hour",           # registrations per client address
    "reset_account": "3/hour",       # password-reset requests per account
    "reset_address": "10/hour",      # password-reset requests per client address
    "search": "30/second",           # per client address
}


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
    # Every Api replica also serves the API itself on this port, shared by the replicas of a node
    # (SO_REUSEPORT), past Serve's per-request path and HAProxy (serve_app/replica_listener.py). Unset: off.
    replica_port: int | None = Field(default=None, ge=1, le=65535)
    replica_host: str = "127.0.0.1"
    api_replicas: int = Field(default=1, ge=1)
    # Serve's `autoscaling_config` for the Api deployment (JSON in the env), e.g. '{"min_replicas": 1,
    # "max_replicas": 4, "target_ongoing_requests": 64}': the replica count then follows load and
    # `api_replicas` is not used. Unless it names a policy, the one that also counts the replica
    # listener's requests (serve_app/autoscaling.py). Unset: a fixed `api_replicas`.
    api_autoscaling: dict | None = None
    api_max_ongoing_requests: int = Field(default=1000, ge=1)
    api_num_cpus: float = Field(default=0.0, ge=0)
    access_log: bool = False
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # Bearer token for admin and internal routes until accounts exist; unset = admin routes closed.
    admin_token: str | None = Field(default=None, min_length=24)
    # Verifies POST /webhooks/stripe (Stripe's signature scheme). `surge up` without it: a random one kept
    # in the data dir and registered with the embedded localstripe; with real Stripe, the endpoint's
    # secret from Stripe's dashboard. Unset on a cluster = webhooks refused.
    stripe_webhook_secret: str | None = Field(default=None, min_length=16)
    # Reservations in flight per replica before the API sheds load with 429 + Retry-After.
    reserve_max_in_flight: int = Field(default=2000, ge=1)
    # How long a replica may answer "sold out" from its own memory without asking the owner.
    soldout_ttl_s: float = Field(default=0.25, ge=0, le=5)
    # Accounts and API security
    # Browser origins allowed to call the API with credentials (comma-separated in the env); none = no CORS.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Session cookies: HttpOnly and SameSite=Lax always; Secure when served over HTTPS.
    cookie_secure: bool = False
    rate_limits: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    # Proxies in front of the replicas that append the client to X-Forwarded-For; the client address
    # is the entry that many hops from the right. Unset: 1 behind Serve's HAProxy ingress (Surge's
    # HAProxy wrapper adds `option forwardfor`), 0 otherwise (the socket peer). Add one per load
    # balancer in front that appends too; never more than there are, or clients choose their address.
    forwarded_hops: int | None = Field(default=None, ge=0, le=5)

    @property
    def client_hops(self) -> int:
        return self.forwarded_hops if self.forwarded_hops is not None else (1 if self.ingress == "haproxy" else 0)

    @field_validator("api_autoscaling", mode="after")
    @classmethod
    def _check_autoscaling(cls, value: dict | None) -> dict | None:
        if value is not None:
            from ray.serve.config import AutoscalingConfig

            unknown = set(value) - set(AutoscalingConfig.model_fields)  # Serve ignores a misspelt field
            if unknown:
                raise ValueError(f"not fields of Serve's autoscaling_config: {', '.join(sorted(unknown))}")
            AutoscalingConfig(**value)  # and fail at start-up on a bad bound, not at deploy
        return value

    @model_validator(mode="after")
    def _listener_needs_a_replica(self):
        # scaled to zero, nothing listens on the replica port, and Serve's cold start only sees
        # requests that come through Serve: the fast door would stay shut
        if self.replica_port and self.api_autoscaling and self.api_autoscaling.get("min_replicas", 1) == 0:
            raise ValueError("api_autoscaling.min_replicas must be >= 1 while the replica listener is on (replica_port)")
        return self

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value):
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("rate_limits", mode="after")
    @classmethod
    def _merge_limits(cls, value: dict[str, str]) -> dict[str, str]:
        from limits import parse_many

        merged = {**DEFAULT_RATE_LIMITS, **value}
        for name, spec in merged.items():
            parse_many(spec)  # fail fast on a malformed limit
        return merged
