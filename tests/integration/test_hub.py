"""The realtime hub process started by the stack: health before upgrade, subscribe, heartbeat ticks."""
import json

import httpx
import pytest
from websockets.asyncio.client import connect

pytestmark = pytest.mark.integration


async def test_hub_answers_health_checks_before_the_upgrade(stack):
    url = stack.urls.hub.replace("ws://", "http://") + "/healthz"
    async with httpx.AsyncClient() as client:
        r = await client.get(url)
    assert r.status_code == 200 and r.text == "ok\n"


async def test_a_subscriber_receives_heartbeats_with_increasing_sequence_numbers(stack):
    async with connect(stack.urls.hub, open_timeout=10) as ws:
        await ws.send(json.dumps({"op": "subscribe", "topics": ["heartbeat", "admin"]}))
        ack = json.loads(await ws.recv())
        assert ack == {"op": "subscribed", "topics": ["heartbeat"], "refused": ["admin"]}  # admin is private
        seqs = []
        while len(seqs) < 2:
            msg = json.loads(await ws.recv())
            assert msg["topic"] == "heartbeat"
            seqs.append(msg["seq"])
        assert seqs[1] == seqs[0] + 1


async def test_a_malformed_frame_gets_an_error_not_a_dropped_connection(stack):
    async with connect(stack.urls.hub, open_timeout=10) as ws:
        await ws.send("not json")
        assert json.loads(await ws.recv())["op"] == "error"
        await ws.send(json.dumps({"op": "subscribe", "topics": ["heartbeat"]}))
        assert json.loads(await ws.recv())["op"] == "subscribed"


async def test_a_page_from_another_origin_cannot_open_a_socket(stack):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        async with connect(stack.urls.hub, open_timeout=10, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with connect(stack.urls.hub, open_timeout=10, origin=stack.urls.api) as ws:  # the store's own pages
        await ws.send(json.dumps({"op": "subscribe", "topics": ["heartbeat"]}))
        assert json.loads(await ws.recv())["op"] == "subscribed"
