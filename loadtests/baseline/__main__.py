"""``python -m loadtests.baseline [PORT] [--port N] [--workers N]``: serve the baseline app on 127.0.0.1.

The port comes from argv (``PORT`` or ``--port``), else ``BASELINE_PORT``, else 8090. The host is always
127.0.0.1. Access logs are off so the baseline is not measured writing them.
"""
from __future__ import annotations

import argparse
import os

import uvicorn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.baseline", description=__doc__)
    parser.add_argument("port_arg", nargs="?", type=int, metavar="PORT")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BASELINE_PORT", "8090")))
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    uvicorn.run(
        "loadtests.baseline.app:app",
        host="127.0.0.1",
        port=args.port_arg if args.port_arg is not None else args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
