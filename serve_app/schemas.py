"""Request and response models. Request bodies forbid unknown fields (no smuggled price, owner or role)."""
from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Line(Strict):
    sku: Sku
    quantity: int = Field(ge=1, le=1000)


class ReserveRequest(Strict):
    reservation_id: Id = Field(default_factory=lambda: uuid.uuid4().hex,
                               description="Caller-chosen id; retrying with the same id is safe.")
    owner: Id = Field(description="What holds the stock, e.g. cart:abc or order:ORD-1")
    customer_id: Id | None = None
    lines: list[Line] = Field(min_length=1, max_length=100)
    ttl_s: float = Field(default=600, gt=0, le=86_400)


class Reservation(BaseModel):
    reservation_id: str
    state: str
    expires_at: float | None = None
    available: dict[str, int] = {}


class CommitRequest(Strict):
    skus: list[Sku] = Field(min_length=1, max_length=100)


class AdjustRequest(Strict):
    delta: int = Field(description="Units received (> 0) or written off (< 0)")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class StockSettings(Strict):
    on_hand: int = Field(ge=0)
    low_stock_threshold: int = Field(default=0, ge=0)
    per_customer_cap: int | None = Field(default=None, ge=1)


class StockLevel(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int
    sold: int
    received: int
    low_stock_threshold: int
    per_customer_cap: int | None
    version: int
