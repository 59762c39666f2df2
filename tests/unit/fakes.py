"""Test doubles shared by unit tests."""
from __future__ import annotations


class ObservedMetrics:
    """Stands in for `ApiMetrics`: what `observe_request` was called with."""

    def __init__(self):
        self.calls: list[tuple[str, str, int]] = []

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append((method, route, status))
