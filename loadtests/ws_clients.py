"""One client process for the realtime benchmark: many websocket subscribers to one topic.

    python -m loadtests.ws_clients --url ws://127.0.0.1:PORT --topic product:SKU --n 2500 --out DIR/p0

Opens `--n` connections in batches of `--batch` (each batch waits for its subscribe acks before the
next starts, so there is no SYN storm), subscribes each to `--topic`, then writes `OUT.ready.json`
({"connected", "failed", "errors"}). From then on, it records, for every frame of the topic, its
`available` and the receive time (`time.time()`), until SIGTERM/SIGINT or `--max-seconds`; then
it writes `OUT.json` ({"connected", "failed", "errors", "dropped", "close_codes", "available",
"t", "snapshot_frames"}) and exits without a closing handshake (the kernel closes the sockets).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import resource
import signal
import time

from websockets.asyncio.client import connect


class Recorder:
    def __init__(self) -> None:
        self.available: list[int] = []
        self.t: list[float] = []
        self.connected = 0
        self.failed = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.dropped = 0
        self.close_codes: collections.Counter[str] = collections.Counter()
        self.stopping = False


async def one_client(url: str, topic: str, rec: Recorder, acked: asyncio.Future, compression: str | None,
                     open_timeout: float) -> None:
    ws = None
    try:
        ws = await connect(url, open_timeout=open_timeout, ping_interval=None, compression=compression,
                           max_queue=64)
        await ws.send(json.dumps({"op": "subscribe", "topics": [topic]}))
        avail = rec.available
        times = rec.t
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
        for _ in range(min(args.batch, args.n - start)):
            fut = loop.create_future()
            acks.append(fut)
            tasks.append(asyncio.create_task(one_client(args.url, args.topic, rec, fut, compression, args.open_timeout)))
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
           "close_codes": dict(rec.close_codes), "cpu_s": time.process_time(), "available": rec.available, "t": rec.t}
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
    p.add_argument("--compression", choices=["deflate", "none"], default="deflate")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main_async(args))
    os._exit(0)  # no closing handshakes: the kernel closes the sockets


if __name__ == "__main__":
    main()
