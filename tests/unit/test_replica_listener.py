"""The replica listener's edge: what Serve's ingress did for a request (request id, timeout) is done
here for requests that come straight to a replica, and the client address is the socket peer."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from serve_app.ratelimit import CLIENT_HOPS_KEY, client_address
from serve_app.replica_listener import ListenerEdge
from tests.unit.fakes import ObservedMetrics

pytestmark = pytest.mark.unit


class Inner:
    """Answers 200 after `delay` seconds; remembers the scope it was given."""

    def __init__(self, delay: float = 0.0, stall_after_start: bool = False):
        self.delay, self.stall_after_start, self.scope = delay, stall_after_start, None

    async def __call__(self, scope, receive, send):
        self.scope = scope
        await asyncio.sleep(self.delay)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        if self.stall_after_start:
            await asyncio.sleep(10)
        await send({"type": "http.response.body", "body": b"ok"})


async def run(edge: ListenerEdge, headers: list[tuple[bytes, bytes]]) -> list[dict]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await edge({"type": "http", "path": "/x", "method": "GET", "headers": headers}, receive, send)
    return sent


def header(message: dict, name: bytes) -> list[bytes]:
    return [v for n, v in message["headers"] if n == name]


async def test_a_request_without_an_id_gets_one_that_the_app_sees_and_the_answer_echoes():
    inner = Inner()
    sent = await run(ListenerEdge(inner, 5), [(b"accept", b"*/*")])
    given = [v for n, v in inner.scope["headers"] if n == b"x-request-id"]
    assert len(given) == 1 and len(given[0]) >= 16
    assert header(sent[0], b"x-request-id") == given


async def test_ids_given_by_one_edge_are_unique_and_two_edges_do_not_share_them():
    inner, ids = Inner(), []
    for edge in (ListenerEdge(inner, 5), ListenerEdge(inner, 5)):
        for _ in range(3):
            await run(edge, [])
            ids += [v for n, v in inner.scope["headers"] if n == b"x-request-id"]
    assert len(ids) == len(set(ids)) == 6


async def test_a_sane_caller_id_is_kept_and_an_unsafe_one_is_replaced():
    inner = Inner()
    sent = await run(ListenerEdge(inner, 5), [(b"x-request-id", b"trace-42.a:b")])
    assert header(sent[0], b"x-request-id") == [b"trace-42.a:b"]
    sent = await run(ListenerEdge(inner, 5), [(b"x-request-id", b"bad id\nwith newline")])
    ids = [v for n, v in inner.scope["headers"] if n == b"x-request-id"]
    assert len(ids) == 1 and ids[0] != b"bad id\nwith newline"
    assert header(sent[0], b"x-request-id") == ids


async def test_requests_here_count_the_socket_peer_not_what_the_client_wrote_in_forwarded_for():
    inner = Inner()
    await run(ListenerEdge(inner, 5), [(b"x-forwarded-for", b"198.51.100.7")])
    assert inner.scope[CLIENT_HOPS_KEY] == 0
    # the app is configured for one trusted proxy (Serve's HAProxy), yet here the peer counts
    app = SimpleNamespace(state=SimpleNamespace(ctx=SimpleNamespace(config=SimpleNamespace(serve=SimpleNamespace(client_hops=1)))))
    scope = {**inner.scope, "client": ("203.0.113.9", 5000), "app": app}
    assert client_address(Request(scope)) == "203.0.113.9"
    del scope[CLIENT_HOPS_KEY]  # the same request through HAProxy: the appended hop counts
    assert client_address(Request(scope)) == "198.51.100.7"


async def test_a_request_past_the_timeout_gets_a_503_problem_with_retry_after_and_its_id():
    sent = await run(ListenerEdge(Inner(delay=5), 0.05), [(b"x-request-id", b"slow-1")])
    start, body = sent[0], json.loads(sent[1]["body"])
    assert start["status"] == 503
    assert header(start, b"content-type") == [b"application/problem+json"]
    assert header(start, b"retry-after") == [b"1"]
    assert header(start, b"x-request-id") == [b"slow-1"]
    assert body["code"] == "timeout" and body["status"] == 503 and body["request_id"] == "slow-1"


async def test_a_timeout_after_the_answer_started_is_not_turned_into_a_second_answer():
    with pytest.raises(TimeoutError):
        await run(ListenerEdge(Inner(stall_after_start=True), 0.05), [])


async def test_past_the_in_flight_bound_a_request_is_shed_with_429_before_any_work():
    release = asyncio.Event()

    class Held(Inner):
        calls = 0

        async def __call__(self, scope, receive, send):
            Held.calls += 1
            await release.wait()
            await super().__call__(scope, receive, send)

    edge = ListenerEdge(Held(), 5, max_in_flight=1)
    first = asyncio.create_task(run(edge, []))
    while edge.in_flight < 1:
        await asyncio.sleep(0)
    shed = await run(edge, [(b"x-request-id", b"shed-1")])
    assert shed[0]["status"] == 429 and Held.calls == 1
    assert header(shed[0], b"retry-after") == [b"1"] and header(shed[0], b"x-request-id") == [b"shed-1"]
    assert json.loads(shed[1]["body"])["code"] == "overloaded"
    release.set()
    assert (await first)[0]["status"] == 200 and edge.in_flight == 0
    assert (await run(edge, []))[0]["status"] == 200  # room again


async def test_the_answers_the_edge_makes_itself_are_counted_a_shed_one_under_its_own_label():
    metrics, release = ObservedMetrics(), asyncio.Event()

    class Routed(Inner):
        async def __call__(self, scope, receive, send):
            scope["route"] = SimpleNamespace(path="/inventory/reservations")  # as the router leaves it
            await release.wait()
            await super().__call__(scope, receive, send)

    edge = ListenerEdge(Routed(), 0.05, max_in_flight=1, metrics=metrics)
    timed_out = asyncio.create_task(run(edge, []))
    while edge.in_flight < 1:
        await asyncio.sleep(0)
    assert (await run(edge, []))[0]["status"] == 429
    assert (await timed_out)[0]["status"] == 503
    assert metrics.calls == [("GET", "shed", 429), ("GET", "/inventory/reservations", 503)]
    release.set()
    assert (await run(edge, []))[0]["status"] == 200
    assert len(metrics.calls) == 2  # what the app answers, the app's own middleware counts
