"""Dependencies declared once, as `Annotated` aliases (the FastAPI template's `deps.py`)."""
from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serve_app.context import AppContext
from serve_app.principal import Principal

_bearer = HTTPBearer(auto_error=False)


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool, a thread handoff
    # per request that cost more than the whole reservation on the hot path.
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_context)]


async def require_admin(ctx: Ctx, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Admin and internal routes. Until accounts exist this is the service token from settings
    (`SURGE_ADMIN_TOKEN`); with none configured, admin routes refuse everyone."""
    token = ctx.config.serve.admin_token
    if creds is None or token is None or not secrets.compare_digest(creds.credentials.encode(), token.encode()):
        raise HTTPException(401, "Admin credentials required.", headers={"WWW-Authenticate": "Bearer"})


Admin = Annotated[None, Depends(require_admin)]


async def optional_user(request: Request) -> Principal | None:
    """The signed-in user, or None. (Interface: the accounts module resolves bearer tokens and
    session cookies here.)"""
    return getattr(request.state, "principal", None)


OptionalUser = Annotated[Principal | None, Depends(optional_user)]
