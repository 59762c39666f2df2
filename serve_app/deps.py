"""Dependencies declared once, as `Annotated` aliases (the FastAPI template's `deps.py`)."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serve_app.auth import admin_user, current_user, optional_user
from serve_app.context import AppContext
from serve_app.principal import Principal


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool, a thread handoff
    # per request that cost more than the whole reservation on the hot path.
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_context)]


# Who is calling (serve_app/auth.py resolves bearer JWTs, the service token and session cookies)
OptionalUser = Annotated[Principal | None, Depends(optional_user)]
CurrentUser = Annotated[Principal, Depends(current_user)]  # 401 without valid credentials
AdminUser = Annotated[Principal, Depends(admin_user)]  # 403 unless an admin (or the service token)
# The admin inventory routes' alias: an admin JWT or the service token (SURGE_ADMIN_TOKEN).
Admin = AdminUser
