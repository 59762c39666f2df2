"""Request and response models of accounts. Request bodies forbid unknown fields: nobody sets a
role, a status or an owner through them (admins change roles through their own route)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from serve_app.schemas import Strict

# No control characters in anything stored as text (PostgreSQL refuses NUL: a 500 otherwise)
_TEXT = r"^[^\x00-\x1f\x7f]*$"
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254,
                                         pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")]
# bounded so a megabyte "password" cannot buy a megabyte of Argon2 work
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100, pattern=_TEXT)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50, pattern=_TEXT)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=25, pattern=r"^\+?[0-9 ().-]+$")]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
RoleName = Literal["customer", "vendor", "admin"]


class RegisterRequest(Strict):
    email: Email
    password: Password
    name: Name = ""


class SignInRequest(Strict):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RefreshRequest(Strict):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class PasswordChange(Strict):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    new_password: Password


class PasswordResetRequest(Strict):
    email: Email


class PasswordResetConfirm(Strict):
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    new_password: Password


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


class User(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    role: RoleName
    status: Literal["active", "deactivated"]
    phone: str | None = None
    created_at: datetime

    @classmethod
    def from_row(cls, row, cipher) -> "User":
        """From a `users` row; the phone is decrypted with `cipher` (storage/crypto.py)."""
        from storage.crypto import context_for

        return cls(id=row["id"], email=row["email"], name=row["name"], role=row["role"], status=row["status"],
                   phone=cipher.decrypt(row["phone_enc"], context_for("users", "phone_enc", row["id"])),
                   created_at=row["created_at"])


class SessionResponse(BaseModel):
    """A page sign-in: the tokens are in HttpOnly cookies, not in the body."""
    user: User
    expires_in: int


class ProfileUpdate(Strict):
    name: Name | None = None
    phone: Phone | None = Field(default=None, description="omitted: unchanged; null: removed")


class AddressIn(Strict):
    label: Label = ""
    name: Line
    line1: Line
    line2: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    city: Line
    region: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    postal: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    country: Annotated[str, StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{2}$")]
    is_default: bool = False


class AddressPatch(Strict):
    label: Label | None = None
    name: Line | None = None
    line1: Line | None = None
    line2: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    city: Line | None = None
    region: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    postal: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)] | None = None
    country: Annotated[str, StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{2}$")] | None = None
    is_default: bool | None = None


class Address(BaseModel):
    id: uuid.UUID
    label: str
    name: str
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal: str
    country: str
    is_default: bool
    created_at: datetime
    updated_at: datetime


class RoleChange(Strict):
    role: RoleName


class UserPage(BaseModel):
    items: list[User]
    total: int
    limit: int
    offset: int


class AuditEntry(BaseModel):
    id: int
    actor_id: uuid.UUID | None
    actor_email: str | None
    action: str
    target_type: str
    target_id: str | None
    detail: dict
    at: datetime
