"""Catalog, search and review request models. Bodies forbid unknown fields (`Strict`): no setting of
derived figures (ratings, stock, price ranges) through the API."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, StringConstraints, model_validator

from serve_app.schemas import Sku, Strict

Slug = Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
AttrKey = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
AttrValue = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[int, Field(ge=0, le=100_000_000_00, description="Integer minor units (cents)")]
Status = Literal["draft", "active", "archived"]


class VariantIn(Strict):
    sku: Sku
    name: Annotated[str, StringConstraints(max_length=120)] = ""
    price_minor: Money
    compare_at_minor: Money | None = Field(default=None, description="The 'was' price; above price_minor")
    currency: Currency = "USD"
    attributes: dict[AttrKey, AttrValue] = Field(default_factory=dict, max_length=20)
    position: int = Field(default=0, ge=0, le=1000)
    image_url: AnyHttpUrl | None = None

    @model_validator(mode="after")
    def _compare_at_above_price(self):
        if self.compare_at_minor is not None and self.compare_at_minor <= self.price_minor:
            raise ValueError("compare_at_minor must be greater than price_minor")
        return self


def _one_currency(variants: list[VariantIn] | None) -> None:
    if variants:
        if len({v.currency for v in variants}) > 1:
            raise ValueError("all variants of a product share one currency")
        if len({v.sku for v in variants}) != len(variants):
            raise ValueError("variant SKUs must be unique")


class ProductCreate(Strict):
    slug: Slug
    name: Name
    description: Annotated[str, StringConstraints(max_length=20_000)] = ""
    status: Status = "draft"
    category: Slug | None = None
    flash_sale: bool = False
    tags: list[Tag] = Field(default_factory=list, max_length=30)
    attributes: dict[AttrKey, AttrValue] = Field(default_factory=dict, max_length=30)
    image_urls: list[AnyHttpUrl] = Field(default_factory=list, max_length=20)
    seo_title: Annotated[str, StringConstraints(max_length=70)] = ""
    seo_description: Annotated[str, StringConstraints(max_length=320)] = ""
    variants: list[VariantIn] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _variants_consistent(self):
        _one_currency(self.variants)
        return self


class ProductUpdate(Strict):
    slug: Slug | None = None
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    status: Status | None = None
    category: Slug | None = None
    flash_sale: bool | None = None
    tags: list[Tag] | None = Field(default=None, max_length=30)
    attributes: dict[AttrKey, AttrValue] | None = Field(default=None, max_length=30)
    image_urls: list[AnyHttpUrl] | None = Field(default=None, max_length=20)
    seo_title: Annotated[str, StringConstraints(max_length=70)] | None = None
    seo_description: Annotated[str, StringConstraints(max_length=320)] | None = None
    variants: list[VariantIn] | None = Field(default=None, min_length=1, max_length=100,
                                             description="Replaces the product's variants when given")

    @model_validator(mode="after")
    def _variants_consistent(self):
        _one_currency(self.variants)
        # columns without a null: absent means "unchanged", null is refused (it once reached the database as a 500)
        for name in ("slug", "name", "status", "flash_sale", "description", "tags", "attributes", "image_urls", "variants",
                     "seo_title", "seo_description"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class CategoryIn(Strict):
    slug: Slug
    name: Name
    parent: Slug | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    position: int = Field(default=0, ge=0, le=100_000)


class ReviewIn(Strict):
    rating: int = Field(ge=1, le=5)
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] = ""
    body: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)] = ""
    author_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=80)] = ""


class ModerationIn(Strict):
    status: Literal["approved", "hidden", "pending"]
