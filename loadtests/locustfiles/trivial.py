"""Locust scenario: hammer one trivial GET endpoint with no think time.

The path comes from ``SURGE_BENCH_PATH`` (default ``/healthz``); the host is Locust's
``--host``. Any non-2xx answer counts as a failure.
"""
import os

from locust import FastHttpUser, constant, tag, task

BENCH_PATH = os.environ.get("SURGE_BENCH_PATH", "/healthz")
if not BENCH_PATH.startswith("/"):
    raise ValueError(f"SURGE_BENCH_PATH must start with '/', got {BENCH_PATH!r}")


class TrivialUser(FastHttpUser):
    """One keep-alive connection per user; each user sends its next request as soon as the last returns."""

    wait_time = constant(0)

    @tag("trivial")
    @task
    def get_trivial(self) -> None:
        self.client.get(BENCH_PATH, name=BENCH_PATH)
