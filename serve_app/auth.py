"""Who is calling: credentials → `Principal`, resolved once per request for the `deps.py` aliases.

Credentials, in order:
1. `Authorization: Bearer <token>` (API clients): the service token (`SURGE_ADMIN_TOKEN`, for ops
   tools and benchmarks: an admin with no user), else an access JWT.
2. The `surge_access` cookie (pages): HttpOnly, SameSite=Lax, Secure when configured.

A token that is present but invalid is refused (401) rather than treated as anonymous, except a
stale cookie on a route that allows anonymous callers (the page still renders; it refreshes).
A user who is deactivated is refused even with an unexpired token (status read through
`UserStates`, at most 5 s old).
"""
from __future__ import annotations

import secrets

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer

from actors.domain.errors import AccountDeactivated, Forbidden, InvalidToken, Unauthenticated
from serve_app.principal import Principal, Role
from storage.tokens import InvalidToken as BadJwt
from storage.tokens import verify_access

ACCESS_COOKIE = "surge_access"
REFRESH_COOKIE = "surge_refresh"
REFRESH_COOKIE_PATH = "/auth"

SERVICE_PRINCIPAL = Principal(user_id=None, email=None, role=Role.ADMIN)

# Declares the OAuth2 password flow in OpenAPI (the docs' Authorize button) and reads the header.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def principal_from_jwt(request: Request, token: str) -> Principal:
    ctx = request.app.state.ctx
    try:
        claims = verify_access(ctx.accounts.tokens, token)
    except BadJwt:
        raise InvalidToken() from None
    state = await ctx.accounts.states.get(claims.user_id)
    if state is None:
        raise InvalidToken()
    if state.status != "active":
        raise AccountDeactivated()
    return Principal(user_id=claims.user_id, email=state.email, role=Role(state.role))


def _is_service_token(request: Request, token: str) -> bool:
    expected = request.app.state.ctx.config.serve.admin_token
    return expected is not None and secrets.compare_digest(token.encode(), expected.encode())


async def _resolve(request: Request, bearer: str | None, *, lenient_cookie: bool) -> Principal | None:
    """The caller from a bearer (the service token or a JWT: a bad one is an error) or the session
    cookie (a bad one is an error too, unless `lenient_cookie`: then the caller is anonymous)."""
    if bearer:
        if _is_service_token(request, bearer):
            return SERVICE_PRINCIPAL
        return await principal_from_jwt(request, bearer)
    cookie = request.cookies.get(ACCESS_COOKIE)
    if not cookie:
        return None
    try:
        return await principal_from_jwt(request, cookie)
    except (InvalidToken, AccountDeactivated):
        if lenient_cookie:
            return None
        raise


async def optional_user(request: Request, bearer: str | None = Depends(oauth2_scheme)) -> Principal | None:
    return await _resolve(request, bearer, lenient_cookie=True)


async def _authenticated(request: Request, bearer: str | None = Depends(oauth2_scheme)) -> Principal:
    principal = await _resolve(request, bearer, lenient_cookie=False)
    if principal is None:
        raise Unauthenticated()
    return principal


async def current_user(principal: Principal = Depends(_authenticated)) -> Principal:
    """A signed-in user (never the service token: routes about "my" data need a user id)."""
    if principal.user_id is None:
        raise Forbidden("This route needs a signed-in user, not the service token.")
    return principal


async def admin_user(principal: Principal = Depends(_authenticated)) -> Principal:
    """An admin: a user with the admin role, or the service token (`user_id` None)."""
    if not principal.is_admin:
        raise Forbidden("Admins only.")
    return principal


def set_session_cookies(response: Response, access_token: str, refresh_token: str, *, access_ttl_s: int,
                        refresh_ttl_s: int, secure: bool) -> None:
    response.set_cookie(ACCESS_COOKIE, access_token, max_age=access_ttl_s, httponly=True, samesite="lax",
                        secure=secure, path="/")
    # the refresh token is sent only to /auth (refresh, sign-out), never with ordinary page loads
    response.set_cookie(REFRESH_COOKIE, refresh_token, max_age=refresh_ttl_s, httponly=True, samesite="lax",
                        secure=secure, path=REFRESH_COOKIE_PATH)


def clear_session_cookies(response: Response, *, secure: bool) -> None:
    response.delete_cookie(ACCESS_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, httponly=True, samesite="lax", secure=secure)
