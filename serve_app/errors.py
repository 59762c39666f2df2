"""RFC 9457 problem details: the one JSON shape of every error the API returns.

Domain errors (`SurgeError`) carry a stable code and status; they are mapped here, once.
Dependency faults (database, cache, an owner actor) become 503 with Retry-After.
"""
from __future__ import annotations

import functools
import logging
from typing import Any

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from actors.domain.errors import ErrorCode, SurgeError
from storage.logs import request_id_var

log = logging.getLogger("surge.api")

PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad request", 401: "Unauthorized", 402: "Payment required", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    409: "Conflict", 413: "Content too large", 415: "Unsupported media type", 422: "Unprocessable content",
    429: "Too many requests", 500: "Internal server error", 503: "Service unavailable",
}
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type", 429: "overloaded", 503: "unavailable"}


def problem(status: int, code: str, detail: str, instance: str | None = None,
            headers: dict[str, str] | None = None, **extensions: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:surge:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


@functools.cache
def _dependency_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import RayActorError, ActorUnavailableError

    return (
        OSError,
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.TooManyConnectionsError,
        asyncpg.InterfaceError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        RayActorError,
        ActorUnavailableError,
        TimeoutError,
    )


_RESERVED = frozenset({"retry_after", "type", "title", "status", "detail", "instance", "code", "headers"})


def surge_problem(exc: SurgeError, instance: str | None) -> JSONResponse:
    headers = {"Retry-After": str(exc.context.get("retry_after", 1))} if exc.status in (429, 503) else None
    if exc.status == 401:  # RFC 6750: say which scheme to use
        headers = {"WWW-Authenticate": "Bearer"}
    # context never overrides the problem's own members (a context key "code" once turned a 422 into a 500)
    extra = {k: v for k, v in exc.context.items() if k not in _RESERVED}
    return problem(exc.status, exc.code.value, exc.detail, instance, headers=headers, **extra)


def unexpected_problem(exc: Exception, instance: str | None) -> JSONResponse:
    """503 for a fault in a dependency (database, cache, an owner), 422 for text PostgreSQL cannot
    store (a NUL character: valid JSON and URL, never valid text there), 500 for anything else."""
    if isinstance(exc, (asyncpg.exceptions.CharacterNotInRepertoireError, asyncpg.exceptions.UntranslatableCharacterError)):
        return problem(422, ErrorCode.VALIDATION.value, "Text may not contain NUL or other unstorable characters.",
                       instance)
    if isinstance(exc, _dependency_errors()):
        log.warning("dependency unavailable", extra={"error": repr(exc), "path": instance})
        return problem(503, ErrorCode.UNAVAILABLE.value, "A backing service is unavailable; retry shortly.",
                       instance, headers={"Retry-After": "1"})
    log.exception("unhandled error", extra={"path": instance})
    return problem(500, "internal", "An unexpected error occurred.", instance)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SurgeError)
    async def _surge(request: Request, exc: SurgeError):
        return surge_problem(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem(422, ErrorCode.VALIDATION.value, "The request is not valid.", request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        return problem(exc.status_code, _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}"), detail,
                       request.url.path, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return unexpected_problem(exc, request.url.path)
