"""Admin: customers and staff accounts, the support view (a customer's orders and carts), deactivation,
roles, and the audit log. Every action, reads included, is written to the audit log with who did it."""
from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from actors.domain.errors import InvalidTransition, NotFound
from serve_app.account_models import AuditEntry, RoleChange, User, UserPage
from serve_app import orders_access
from serve_app.deps import AdminUser, Ctx
from serve_app.principal import Principal
from serve_app.schemas import OrderView
from storage import admin_audit, cart_store, order_store, session_store, user_store

router = APIRouter(prefix="/admin", tags=["admin users"], responses={
    401: {"description": "Not signed in, or the token is invalid"}, 403: {"description": "Not an admin"}})

_NOT_FOUND = {404: {"description": "No such user"}}


async def _audit(ctx, admin: Principal, action: str, target_type: str, target_id, detail: dict | None = None,
                 conn=None) -> None:
    await admin_audit.record(conn or ctx.pool, admin.user_id, admin.email or "service-token", action, target_type,
                             str(target_id) if target_id is not None else None, detail)


async def _user_or_404(ctx, user_id: uuid.UUID):
    row = await user_store.get(ctx.pool, user_id)
    if row is None:
        raise NotFound("No such user.", user_id=str(user_id))
    return row


@router.get("/users")
async def list_users(ctx: Ctx, admin: AdminUser,
                     q: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$",
                                                   description="part of the email or name")] = None,
                     role: Literal["customer", "vendor", "admin"] | None = None,
                     status: Literal["active", "deactivated"] | None = None,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> UserPage:
    """List and search accounts (newest first); `role=customer` for customers only."""
    rows, total = await user_store.search(ctx.pool, q, role, status, limit, offset)
    await _audit(ctx, admin, "users.search", "user", None, {"q": q, "role": role, "status": status, "offset": offset})
    return UserPage(items=[User.from_row(r, ctx.accounts.cipher) for r in rows], total=total, limit=limit,
                    offset=offset)


@router.get("/users/{user_id}", responses=_NOT_FOUND)
async def get_user(ctx: Ctx, admin: AdminUser, user_id: uuid.UUID) -> User:
    row = await _user_or_404(ctx, user_id)
    await _audit(ctx, admin, "user.view", "user", user_id)
    return User.from_row(row, ctx.accounts.cipher)


@router.get("/users/{user_id}/orders", responses=_NOT_FOUND)
async def user_orders(ctx: Ctx, admin: AdminUser, user_id: uuid.UUID) -> list[OrderView]:
    """Support view: the customer's orders, newest first."""
    await _user_or_404(ctx, user_id)
    async with ctx.pool.acquire() as conn:
        rows = await order_store.for_customer(conn, str(user_id), limit=100)
    await _audit(ctx, admin, "user.orders.view", "user", user_id)
    return [OrderView(**v) for v in await orders_access.views(ctx, rows)]


@router.get("/users/{user_id}/carts", responses=_NOT_FOUND)
async def user_carts(ctx: Ctx, admin: AdminUser, user_id: uuid.UUID) -> list[dict]:
    """Support view: the customer's carts (active, merged, converted), newest first."""
    await _user_or_404(ctx, user_id)
    rows = await cart_store.carts_of(ctx.pool, str(user_id))
    await _audit(ctx, admin, "user.carts.view", "user", user_id)
    return [dict(r) for r in rows]


async def _set_status(ctx, admin: Principal, user_id: uuid.UUID, new_status: str) -> User:
    if admin.user_id == user_id and new_status == "deactivated":
        raise InvalidTransition("Admins cannot deactivate themselves.")
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await user_store.set_status(conn, user_id, new_status)
        if row is None:
            raise NotFound("No such user.", user_id=str(user_id))
        revoked = await session_store.revoke_user(conn, user_id) if new_status == "deactivated" else 0
        await _audit(ctx, admin, f"user.{'deactivate' if new_status == 'deactivated' else 'reactivate'}", "user",
                     user_id, {"sessions_revoked": revoked}, conn)
    ctx.accounts.states.forget(user_id)  # this replica refuses at once; others within the cache's 5 s
    return User.from_row(row, ctx.accounts.cipher)


@router.post("/users/{user_id}/deactivate", responses={**_NOT_FOUND, 409: {"description": "Yourself"}})
async def deactivate(ctx: Ctx, admin: AdminUser, user_id: uuid.UUID) -> User:
    """Refuse the user from now on: sessions revoked, access tokens refused, sign-in refused."""
    return await _set_status(ctx, admin, user_id, "deactivated")


@router.post("/users/{user_id}/reactivate", responses=_NOT_FOUND)
async def reactivate(ctx: Ctx, admin: AdminUser, user_id: uuid.UUID) -> User:
    return await _set_status(ctx, admin, user_id, "active")


@router.put("/users/{user_id}/role", responses={**_NOT_FOUND, 409: {"description": "Demoting yourself"}})
async def change_role(ctx: Ctx, admin: AdminUser, user_id: uuid.UUID, body: RoleChange) -> User:
    if admin.user_id == user_id and body.role != "admin":
        raise InvalidTransition("Admins cannot demote themselves.")
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await user_store.get(conn, user_id)
        if before is None:
            raise NotFound("No such user.", user_id=str(user_id))
        row = await user_store.set_role(conn, user_id, body.role)
        await _audit(ctx, admin, "user.role", "user", user_id, {"from": before["role"], "to": body.role}, conn)
    ctx.accounts.states.forget(user_id)
    return User.from_row(row, ctx.accounts.cipher)


@router.get("/audit-log")
async def audit_log(ctx: Ctx, admin: AdminUser, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                    target_id: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")] = None,
                    actor_id: uuid.UUID | None = None,
                    action: Annotated[str | None, Query(max_length=50, pattern=r"^[^\x00]*$")] = None) -> list[AuditEntry]:
    """Admin actions, newest first; page with `before_id`."""
    rows = await admin_audit.entries(ctx.pool, limit, before_id, target_id, actor_id, action)
    return [AuditEntry(**dict(r)) for r in rows]
