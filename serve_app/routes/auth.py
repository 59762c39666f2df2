"""Sign-up, sign-in (OAuth2 password flow for API clients; cookies for pages), refresh, sign-out and
passwords. Errors are problem+json; sign-in failures never say whether the email exists."""
from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from actors.domain.errors import InvalidToken
from serve_app.account_models import (PasswordChange, PasswordResetConfirm, PasswordResetRequest, RefreshRequest,
                                      RegisterRequest, SessionResponse, SignInRequest, TokenResponse, User)
from serve_app.accounts import TokenPair
from serve_app.auth import clear_session_cookies, set_session_cookies
from serve_app.deps import Ctx, CurrentUser
from serve_app.ratelimit import client_address
from serve_app import cart_session
from serve_app.principal import Principal, Role
from storage import user_store

router = APIRouter(prefix="/auth", tags=["auth"], responses={403: {"description": "Account deactivated"}})
log = logging.getLogger("surge.auth")

_LIMITED = {429: {"description": "Too many attempts: retry after Retry-After seconds"}}


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token)


def _cookies(ctx, response: Response, pair: TokenPair) -> None:
    set_session_cookies(response, pair.access_token, pair.refresh_token, access_ttl_s=pair.expires_in,
                        refresh_ttl_s=ctx.accounts.settings.refresh_ttl_s, secure=ctx.config.serve.cookie_secure)


@router.post("/register", status_code=status.HTTP_201_CREATED, responses={409: {"description": "Email taken"}, **_LIMITED})
async def register(ctx: Ctx, request: Request, body: RegisterRequest) -> User:
    """Create a customer account (the role is always customer; admins change roles)."""
    row = await ctx.accounts.register(body.email, body.password, body.name, client_address(request))
    return User.from_row(row, ctx.accounts.cipher)


@router.post("/token", responses={401: {"description": "Incorrect email or password"}, **_LIMITED})
async def token(ctx: Ctx, request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenResponse:
    """OAuth2 password flow (form fields `username` = the email, `password`): an access token of a
    few minutes and a rotating refresh token."""
    return _tokens(await ctx.accounts.sign_in(form.username, form.password, client_address(request)))


@router.post("/sign-in", responses={401: {"description": "Incorrect email or password"}, **_LIMITED})
async def sign_in(ctx: Ctx, request: Request, response: Response, body: SignInRequest) -> SessionResponse:
    """Sign-in for pages: the session is set as HttpOnly, SameSite=Lax cookies."""
    pair = await ctx.accounts.sign_in(body.email, body.password, client_address(request))
    _cookies(ctx, response, pair)
    row = await user_store.get(ctx.pool, pair.user_id)
    await _merge_guest_cart(ctx, request, response, row)
    return SessionResponse(user=User.from_row(row, ctx.accounts.cipher), expires_in=pair.expires_in)


async def _merge_guest_cart(ctx, request: Request, response: Response, row) -> None:
    """What the shopper put in the cart before signing in moves into their own cart."""
    if cart_session.guest_cart_id(ctx, request) is None:
        return
    try:
        await cart_session.merge_into_customer(ctx, request, Principal(user_id=row["id"], email=row["email"], role=Role(row["role"])))
        response.delete_cookie(cart_session.COOKIE, path="/")
    except Exception:  # signing in must not fail because a cart could not merge; the merge route retries
        log.warning("merging the guest cart at sign-in failed", exc_info=True)


@router.post("/refresh", responses={401: {"description": "Invalid, expired, revoked or reused refresh token"}})
async def refresh(ctx: Ctx, response: Response, body: RefreshRequest | None = None,
                  surge_refresh: Annotated[str | None, Cookie()] = None) -> TokenResponse:
    """Trade a refresh token (body, or the cookie) for a new pair. Each refresh token works once:
    presenting a used one again revokes its whole family (every token descended from the sign-in)."""
    raw = (body.refresh_token if body else None) or surge_refresh
    if not raw:
        raise InvalidToken("No refresh token given.")
    pair = await ctx.accounts.refresh(raw)
    if surge_refresh and not (body and body.refresh_token):
        _cookies(ctx, response, pair)
    return _tokens(pair)


@router.post("/sign-out", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(ctx: Ctx, response: Response, body: RefreshRequest | None = None,
                   surge_refresh: Annotated[str | None, Cookie()] = None) -> None:
    """Revoke the session (the refresh token's family) and clear the cookies. Access tokens already
    issued expire on their own within minutes."""
    await ctx.accounts.sign_out((body.refresh_token if body else None) or surge_refresh)
    clear_session_cookies(response, secure=ctx.config.serve.cookie_secure)


@router.post("/password", responses={401: {"description": "Not signed in, or the current password is incorrect"}})
async def change_password(ctx: Ctx, user: CurrentUser, body: PasswordChange) -> TokenResponse:
    """Change the password: every other session is signed out; the answer is a fresh session."""
    return _tokens(await ctx.accounts.change_password(user.user_id, body.current_password, body.new_password))


@router.post("/password-reset", status_code=status.HTTP_202_ACCEPTED, responses=_LIMITED)
async def request_password_reset(ctx: Ctx, request: Request, body: PasswordResetRequest) -> dict:
    """Email a single-use reset token if the account exists. The answer is the same either way."""
    await ctx.accounts.request_reset(body.email, client_address(request))
    return {"detail": "If an account exists for this email, a reset link is on its way."}


@router.post("/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT,
             responses={401: {"description": "Invalid, expired or used reset token"}})
async def confirm_password_reset(ctx: Ctx, body: PasswordResetConfirm) -> None:
    """Set a new password with the emailed token; every session of the account is signed out."""
    await ctx.accounts.confirm_reset(body.token, body.new_password)
