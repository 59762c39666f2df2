"""The Serve application builder: the one place the API is wired (cosmicpython's bootstrap).

`build_app(args)` is also the `import_path` target for `serve build` / `serve deploy`
(`serve_app.app:build_app`), so a cluster config passes the same arguments as `surge up` does.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from ray import serve

from actors.directory import OwnerConfig
from actors.settings import ActorSettings
from serve_app import autoscaling
from serve_app.context import ApiConfig, AppContext
from serve_app.errors import install_error_handlers
from serve_app.fastpath import ReservationFastPath
from serve_app.metrics import ApiMetrics
from serve_app.middleware import RequestContextMiddleware
from serve_app.replica_listener import ReplicaListener
from serve_app.routes import (account, admin_analytics, admin_catalog, admin_notifications, admin_orders, admin_users, auth,
                              cart, catalog, checkout, health, inventory, orders, reviews, webhooks)
from serve_app.settings import ServeSettings
from storage.runtime import configure_process
from storage.settings import AuthSettings


def create_api(ctx: AppContext, metrics: ApiMetrics | None = None) -> "ApiEdge":
    """The FastAPI app with every router, inside its edge layers (`ApiEdge`)."""
    app = FastAPI(
        title="Surge",
        version=ctx.config.version,
        description="Actor-based realtime commerce runtime. Errors are RFC 9457 problem+json.",
    )
    app.state.ctx = ctx
    if metrics is not None and ctx.catalog is not None:
        ctx.catalog.cache.observer = metrics.observe_catalog_cache
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(inventory.router)
    app.include_router(auth.router)
    app.include_router(account.router)
    app.include_router(admin_users.router)
    app.include_router(cart.router)
    app.include_router(checkout.router)
    app.include_router(orders.router)
    app.include_router(admin_orders.router)
    app.include_router(webhooks.router)
    app.include_router(admin_notifications.router)
    app.include_router(admin_analytics.router)
    app.include_router(catalog.router)
    app.include_router(admin_catalog.router)
    app.include_router(reviews.router)
    return ApiEdge(app, ctx, metrics)


class ApiEdge:
    """The API as served: the edge layers around the FastAPI app, outside FastAPI's own middleware
    stack, so the flash-sale fast path pays for none of FastAPI's layers (error, telemetry and
    body-limit middleware; measured ~6% of a replica's CPU on the flash sale).

    Outermost first: CORS (when origins are configured: preflights are answered before anything
    else, and every answer, the fast path's too, gets its headers), the request id / body limit /
    metrics middleware, the reservation fast path, then FastAPI. `add_exception_handler` and
    `state` reach the FastAPI app (Serve registers its own handlers through the first). Serve's
    status no longer lists the docs path, which it reads only from a FastAPI instance; `/docs` and
    `/openapi.json` are served as before."""

    def __init__(self, api: FastAPI, ctx: AppContext, metrics: ApiMetrics | None = None):
        self.api = api
        serve_settings = ctx.config.serve
        edge = ReservationFastPath(api, max_body_bytes=serve_settings.max_body_bytes, ctx=ctx)
        edge = RequestContextMiddleware(edge, max_body_bytes=serve_settings.max_body_bytes, metrics=metrics)
        if serve_settings.cors_origins:
            edge = CORSMiddleware(edge, allow_origins=serve_settings.cors_origins, allow_credentials=True,
                                  allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                                  allow_headers=["Authorization", "Content-Type", "X-Request-ID", "X-Queue-Token",
                                                 "Idempotency-Key", "X-Cart-Token", "X-Order-Token"],
                                  expose_headers=["Retry-After", "X-Request-ID", "X-Cart-Token", "Idempotent-Replayed"],
                                  max_age=600)
        self._edge = edge

    async def __call__(self, scope, receive, send):
        await self._edge(scope, receive, send)

    @property
    def state(self):
        return self.api.state

    def add_exception_handler(self, exc_class_or_status_code, handler) -> None:
        self.api.add_exception_handler(exc_class_or_status_code, handler)


@serve.deployment(name="Api")
@serve.ingress()
class Api:
    """Stateless ingress: authenticate, validate, forward to the owner of the key."""

    def __init__(self, config: ApiConfig):
        self._config = config
        self._ctx: AppContext | None = None
        self._knobs: dict = {}
        self._listener: ReplicaListener | None = None
        configure_process(config.owners.log_level, "api", config.owners.settings.gc_gen0_threshold)

    async def __serve_build_asgi_app__(self) -> ApiEdge:
        self._ctx = await AppContext.create(self._config)
        self._apply_knobs()
        metrics = ApiMetrics()
        app = create_api(self._ctx, metrics)
        serve_settings = self._config.serve
        if serve_settings.replica_port:
            self._listener = ReplicaListener(app, serve_settings.replica_host, serve_settings.replica_port,
                                             serve_settings.request_timeout_s, serve_settings.api_max_ongoing_requests,
                                             metrics=metrics)
            await self._listener.start()
        return app

    def reconfigure(self, user_config: dict) -> None:
        """Runtime knobs, changed through Serve's `user_config` without restarting replicas:
        `reserve_max_in_flight`, `soldout_ttl_s`."""
        self._knobs = dict(user_config or {})
        self._apply_knobs()

    def _apply_knobs(self) -> None:
        if self._ctx is None:
            return
        if "reserve_max_in_flight" in self._knobs:
            self._ctx.reserve_limiter.limit = int(self._knobs["reserve_max_in_flight"])
        if "soldout_ttl_s" in self._knobs:
            self._ctx.inventory.soldout_ttl_s = float(self._knobs["soldout_ttl_s"])

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve asks each replica for this when the deployment autoscales: the listener's requests
        in flight, which Serve's own count misses (`serve_app/autoscaling.py`)."""
        return {autoscaling.LISTENER_ONGOING: self._listener.in_flight if self._listener is not None else 0}

    async def __del__(self):
        if self._listener is not None:
            await self._listener.stop()
        if self._ctx is not None:
            await self._ctx.close()


def api_options(serve_settings: ServeSettings) -> dict:
    """Deployment options from settings (local runs); on a cluster the Serve config file overrides them."""
    options = {
        # Serve's per-request access log line costs ~20% of a trivial request's CPU; our middleware
        # keeps the request id and the metrics, and errors are still logged.
        "logging_config": {"encoding": "JSON", "enable_access_log": serve_settings.access_log},
        "max_ongoing_requests": serve_settings.api_max_ongoing_requests,
        "ray_actor_options": {"num_cpus": serve_settings.api_num_cpus},
    }
    if serve_settings.api_autoscaling is not None:
        options["autoscaling_config"] = {"policy": {"policy_function": autoscaling.POLICY},
                                         **serve_settings.api_autoscaling}
    else:
        options["num_replicas"] = serve_settings.api_replicas
    return options


def build_app(args: dict):
    """Serve app builder. `args`: database_url, redis_url, and optional metrics_url, hub_url, log_level,
    stripe_api_key, stripe_api_base, elasticsearch_url,
    plus `serve`, `actors` and `auth`: overrides of ServeSettings / ActorSettings / AuthSettings. Whatever is not given
    comes from the settings classes (environment) of the process that builds the app."""
    serve_settings = ServeSettings(**args.get("serve", {}))
    owners = OwnerConfig(
        database_url=args["database_url"],
        redis_url=args.get("redis_url"),
        settings=ActorSettings(**args.get("actors", {})),
        log_level=args.get("log_level", "INFO"),
        stripe_api_key=args.get("stripe_api_key"),
        stripe_api_base=args.get("stripe_api_base"),
        elasticsearch_url=args.get("elasticsearch_url"),
    )
    config = ApiConfig(owners=owners, serve=serve_settings, metrics_url=args.get("metrics_url"), hub_url=args.get("hub_url"),
                       auth=AuthSettings(**args.get("auth", {})))
    options = api_options(serve_settings)
    if args.get("user_config"):
        options["user_config"] = args["user_config"]
    return Api.options(**options).bind(config)


logging.getLogger("surge").addHandler(logging.NullHandler())
