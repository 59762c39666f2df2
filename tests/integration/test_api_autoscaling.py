"""The Api deployment, autoscaled, follows the load that comes through the replica listener, which
Serve's own request count never sees (serve_app/autoscaling.py)."""
from __future__ import annotations

import asyncio

import pytest
from ray import serve

from serve_app.app import build_app
from tests.conftest import async_wait_for, free_port

pytestmark = pytest.mark.integration

APP = "autoscale-test"


def running_api_replicas() -> int:
    app = serve.status().applications.get(APP)
    if app is None or "Api" not in app.deployments:
        return 0
    return app.deployments["Api"].replica_states.get("RUNNING", 0)


def replicas(n: int):
    async def check() -> bool:
        return await asyncio.to_thread(running_api_replicas) == n
    return check


async def held_request(port: int) -> asyncio.StreamWriter:
    """A reservation whose body never comes: in flight in the listener until its socket closes."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /inventory/reservations HTTP/1.1\r\nHost: surge\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 200\r\n\r\n")
    await writer.drain()
    return writer


async def test_requests_held_in_the_listener_scale_the_api_out_and_their_end_scales_it_back_in(stack):
    port = free_port()
    args = stack.app_args
    args["serve"] = {**args["serve"], "replica_port": port, "request_timeout_s": 120,
                     "api_autoscaling": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2,
                                         "metrics_interval_s": 0.5, "look_back_period_s": 1,
                                         "upscale_delay_s": 0, "downscale_delay_s": 1}}
    await asyncio.to_thread(serve.run, build_app(args), name=APP, route_prefix=f"/{APP}", blocking=False)
    writers: list[asyncio.StreamWriter] = []
    try:
        await async_wait_for(replicas(1), timeout_s=120, what="the autoscaled Api's first replica")
        writers = [await held_request(port) for _ in range(12)]  # one replica holds them: 12 / 2 wants 6, max 2
        await async_wait_for(replicas(2), timeout_s=120, interval_s=0.5,
                             what="a second replica for the listener's load")
        for w in writers:
            w.close()
        writers = []
        await async_wait_for(replicas(1), timeout_s=120, interval_s=0.5,
                             what="back to one replica once the listener is idle")
    finally:
        for w in writers:
            w.close()
        await asyncio.to_thread(serve.delete, APP)
