"""The Redis/Valkey client factory. One place sets timeouts so an outage fails fast, not slowly."""
from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str, timeout_s: float = 2.0, decode_responses: bool = False) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        decode_responses=decode_responses,
    )
