"""One client process for the realtime benchmark: many websocket subscribers to one topic.

    python -m loadtests.ws_clients --url ws://127.0.0.1:PORT --topic product:SKU --n 2500 --out DIR/p0

Opens `--n` connections (`--client raw`, a bare asyncio websocket protocol that costs little CPU
per frame, or `--client websockets`, the library's client) in batches of `--batch` (each batch waits for its subscribe acks before the
next starts, so there is no SYN storm), subscribes each to `--topic`, then writes `OUT.ready.json`
({"connected", "failed", "errors"}). From then on, it records, for every frame of the topic, its
`available`, the receive time (`time.time()`) and which of its connections got it (0..n-1), until
SIGTERM/SIGINT or `--max-seconds`; then it writes `OUT.json` ({"connected", "failed", "errors",
"dropped", "close_codes", "cpu_s", "available", "t", "c"}) and exits without a closing handshake
(the kernel closes the sockets).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import resource
import signal
import struct
import time
from urllib.parse import urlsplit

from websockets.asyncio.client import connect


class Recorder:
    def __init__(self) -> None:
        self.available: list[int] = []
        self.t: list[float] = []
        self.c: list[int] = []  # the connection that received each frame
        self.connected = 0
        self.failed = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.dropped = 0
        self.close_codes: collections.Counter[str] = collections.Counter()
        self.stopping = False


async def one_client(url: str, topic: str, rec: Recorder, acked: asyncio.Future, compression: str | None,
                     open_timeout: float, cid: int) -> None:
    ws = None
    try:
        ws = await connect(url, open_timeout=open_timeout, ping_interval=None, compression=compression,
                           max_queue=64)
        await ws.send(json.dumps({"op": "subscribe", "topics": [topic]}))
        avail, times, cids = rec.available, rec.t, rec.c
        async for raw in ws:
            now = time.time()
            msg = json.loads(raw)
            if "op" in msg:
                if msg["op"] == "subscribed" and not acked.done():
                    rec.connected += 1
                    acked.set_result(True)
                continue
            if msg.get("topic") == topic:
                avail.append(msg["data"]["available"])
                times.append(now)
                cids.append(cid)
        # server closed the connection
        if not rec.stopping:
            rec.dropped += 1
            rec.close_codes[str(ws.close_code)] += 1
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a benchmark counts failures, it does not stop on them
        if not acked.done():
            rec.failed += 1
            rec.errors[type(exc).__name__] += 1
            acked.set_result(False)
        elif not rec.stopping:
            rec.dropped += 1
            rec.close_codes[type(exc).__name__] += 1
    finally:
        if not acked.done():
            rec.failed += 1
            rec.errors["no-ack"] += 1
            acked.set_result(False)


def _masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask, RFC 6455 section 5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else head + mask


class RawClient(asyncio.Protocol):
    """The cheapest websocket subscriber we could write, so that the benchmark's client processes
    (on the same cores as the hub) cost as little as possible per frame: a bare asyncio protocol
    that does the opening handshake, sends one subscribe frame, answers pings, and for each text
    frame of the topic records its `available` (found in the bytes, no JSON decoding) and the time
    its TCP segment was read. Server frames are unmasked and unfragmented here (the hub sends whole
    small text frames)."""

    def __init__(self, host: str, path: str, topic: str, rec: Recorder, acked: asyncio.Future, cid: int):
        self.host, self.path, self.topic, self.rec, self.acked, self.cid = host, path, topic, rec, acked, cid
        self.buf = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.needle = b'"topic":"' + topic.encode() + b'"'
        self.closed_by_server = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self._fail(buf.split(b"\r\n", 1)[0].decode(errors="replace"))
                return
            self.upgraded = True
            buf = buf[end + 4:]
            self.transport.write(_masked(0x1, json.dumps({"op": "subscribe", "topics": [self.topic]}).encode()))
        pos, size = 0, len(buf)
        rec = self.rec
        while size - pos >= 2:
            b0, n = buf[pos], buf[pos + 1] & 0x7F
            start = pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                start = pos + 10
            end = start + n
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode == 0x1:
                if buf.find(self.needle, start, end) >= 0:
                    i = buf.find(b'"available":', start, end) + 12
                    j = i
                    while buf[j] in b"-0123456789":
                        j += 1
                    rec.available.append(int(buf[i:j]))
                    rec.t.append(now)
                    rec.c.append(self.cid)
                elif not self.acked.done() and buf.find(b'"subscribed"', start, end) >= 0:
                    rec.connected += 1
                    self.acked.set_result(True)
            elif opcode == 0x9:  # ping: answer, or the hub's keepalive closes us
                self.transport.write(_masked(0xA, bytes(buf[start:end])))
            elif opcode == 0x8:
                code = str(int.from_bytes(buf[start:start + 2], "big")) if n >= 2 else "1005"
                self.closed_by_server = True
                if not rec.stopping:
                    rec.dropped += 1
                    rec.close_codes[code] += 1
                self.transport.close()
                return
            pos = end
        self.buf = buf[pos:] if pos < size else b""

    def _fail(self, why: str) -> None:
        if not self.acked.done():
            self.rec.failed += 1
            self.rec.errors[why] += 1
            self.acked.set_result(False)
        self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.acked.done():
            self.rec.failed += 1
            self.rec.errors["no-ack"] += 1
            self.acked.set_result(False)
        elif not self.closed_by_server and not self.rec.stopping:
            self.rec.dropped += 1
            self.rec.close_codes[type(exc).__name__ if exc else "eof"] += 1


async def one_raw_client(url: str, topic: str, rec: Recorder, acked: asyncio.Future, open_timeout: float,
                         cid: int) -> None:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.create_connection(
            lambda: RawClient(parts.netloc, parts.path or "/", topic, rec, acked, cid), parts.hostname, parts.port),
            open_timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        if not acked.done():
            rec.failed += 1
            rec.errors[type(exc).__name__] += 1
            acked.set_result(False)


async def main_async(args: argparse.Namespace) -> None:
    rec = Recorder()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = time.monotonic() + args.max_seconds
    compression = None if args.compression == "none" else "deflate"
    tasks: list[asyncio.Task] = []
    for start in range(0, args.n, args.batch):
        if stop.is_set() or time.monotonic() > deadline:
            break
        acks = []
        for cid in range(start, min(start + args.batch, args.n)):
            fut = loop.create_future()
            acks.append(fut)
            if args.client == "raw":
                tasks.append(asyncio.create_task(one_raw_client(args.url, args.topic, rec, fut, args.open_timeout, cid)))
            else:
                tasks.append(asyncio.create_task(one_client(args.url, args.topic, rec, fut, compression,
                                                            args.open_timeout, cid)))
        try:
            await asyncio.wait_for(asyncio.gather(*acks), timeout=args.open_timeout + 5)
        except asyncio.TimeoutError:
            pass
    ready = {"connected": rec.connected, "failed": rec.failed, "errors": dict(rec.errors), "pid": os.getpid()}
    tmp = args.out + ".ready.json.tmp"
    with open(tmp, "w") as f:
        json.dump(ready, f)
    os.replace(tmp, args.out + ".ready.json")
    # record until told to stop, or the hard deadline
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        pass
    rec.stopping = True
    doc = {"connected": rec.connected, "failed": rec.failed, "errors": dict(rec.errors), "dropped": rec.dropped,
           "close_codes": dict(rec.close_codes), "cpu_s": time.process_time(), "available": rec.available, "t": rec.t,
           "c": rec.c}
    tmp = args.out + ".json.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, args.out + ".json")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m loadtests.ws_clients", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--out", required=True, help="path prefix for OUT.ready.json and OUT.json")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--open-timeout", type=float, default=20)
    p.add_argument("--max-seconds", type=float, default=600)
    p.add_argument("--compression", choices=["deflate", "none"], default="deflate",
                   help="what the websockets client offers (the raw client offers no extension)")
    p.add_argument("--client", choices=["raw", "websockets"], default="raw",
                   help="raw: a bare asyncio protocol, the least CPU per frame (default); websockets: the library's client")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                   help="event loop of this client process: uvloop (default, less CPU per frame) or asyncio")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:  # not in every environment: the standard loop costs more CPU per frame
        uvloop = None
    if args.loop == "uvloop" and uvloop is not None:
        uvloop.run(main_async(args))
    else:
        asyncio.run(main_async(args))
    os._exit(0)  # no closing handshakes: the kernel closes the sockets


if __name__ == "__main__":
    main()
