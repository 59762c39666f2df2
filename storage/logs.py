"""JSON logs with a request id, for every Surge process (CLI, replicas, actors, hub).

It sits in `storage/`, the bottom layer, only so that every other layer may import it. The
request id travels in a context variable: the API sets it per request, actors set it per
command they were handed, so one grep of a request id follows a request across processes.
"""
from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO", component: str = "surge") -> None:
    """Route the root logger to stderr as one JSON object per line. Safe to call twice."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_surge", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._surge = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"component": component},
        )
    )
    handler.addFilter(_RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
