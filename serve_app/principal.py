"""Who is calling: the one type every route sees after authentication.

The accounts module (`serve_app/auth.py`) turns a bearer JWT, a session cookie or the service
token into a `Principal`; routes receive it through the `deps.py` aliases (`OptionalUser`,
`CurrentUser`, `AdminUser`) and never parse credentials themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class Role(StrEnum):
    CUSTOMER = "customer"
    VENDOR = "vendor"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    user_id: UUID | None  # None for the service token (ops tools, benchmarks)
    email: str | None
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN
