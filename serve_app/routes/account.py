"""The signed-in user's own profile and addresses. Every statement is scoped by the caller's id:
another user's address id answers 404, exactly like an id that does not exist."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from actors.domain.errors import NotFound
from serve_app.account_models import Address, AddressIn, AddressPatch, ProfileUpdate, User
from serve_app.deps import Ctx, CurrentUser
from storage import address_store, user_store
from storage.crypto import context_for

router = APIRouter(prefix="/account", tags=["account"], responses={
    401: {"description": "Not signed in, or the token is invalid"},
    403: {"description": "Account deactivated, or the service token (not a user)"}})


@router.get("")
async def profile(ctx: Ctx, user: CurrentUser) -> User:
    row = await user_store.get(ctx.pool, user.user_id)
    if row is None:
        raise NotFound("No such user.")
    return User.from_row(row, ctx.accounts.cipher)


@router.patch("")
async def update_profile(ctx: Ctx, user: CurrentUser, body: ProfileUpdate) -> User:
    """Name and phone only (the phone is stored encrypted); `"phone": null` removes it."""
    given = body.model_dump(exclude_unset=True)
    changes = {}
    if given.get("name") is not None:
        changes["name"] = given["name"]
    if "phone" in given:
        changes["phone_enc"] = ctx.accounts.cipher.encrypt(given["phone"], context_for("users", "phone_enc", user.user_id))
    row = await user_store.update_profile(ctx.pool, user.user_id, changes)
    if row is None:
        raise NotFound("No such user.")
    return User.from_row(row, ctx.accounts.cipher)


@router.get("/addresses")
async def list_addresses(ctx: Ctx, user: CurrentUser) -> list[Address]:
    return [Address(**a) for a in await address_store.list_for(ctx.pool, ctx.accounts.cipher, user.user_id)]


@router.post("/addresses", status_code=status.HTTP_201_CREATED)
async def create_address(ctx: Ctx, user: CurrentUser, body: AddressIn) -> Address:
    return Address(**await address_store.create(ctx.pool, ctx.accounts.cipher, user.user_id, body.model_dump()))


@router.get("/addresses/{address_id}", responses={404: {"description": "No such address of yours"}})
async def get_address(ctx: Ctx, user: CurrentUser, address_id: uuid.UUID) -> Address:
    found = await address_store.get(ctx.pool, ctx.accounts.cipher, user.user_id, address_id)
    if found is None:
        raise NotFound("No such address.")
    return Address(**found)


@router.patch("/addresses/{address_id}", responses={404: {"description": "No such address of yours"}})
async def update_address(ctx: Ctx, user: CurrentUser, address_id: uuid.UUID, body: AddressPatch) -> Address:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items()
               if v is not None or k in ("line2", "region")}  # optional lines may be cleared with null
    updated = await address_store.update(ctx.pool, ctx.accounts.cipher, user.user_id, address_id, changes)
    if updated is None:
        raise NotFound("No such address.")
    return Address(**updated)


@router.delete("/addresses/{address_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={404: {"description": "No such address of yours"}})
async def delete_address(ctx: Ctx, user: CurrentUser, address_id: uuid.UUID) -> None:
    if not await address_store.delete(ctx.pool, user.user_id, address_id):
        raise NotFound("No such address.")
