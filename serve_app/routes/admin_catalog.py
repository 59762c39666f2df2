"""Admin catalog writes: products (with their variants) and categories. Every change commits with its
outbox event (topic `catalog`), which invalidates caches and feeds the search index."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from actors.domain.errors import NotFound, ProductNotFound, SkuTaken, SlugTaken, UnknownCategory
from serve_app.catalog_schemas import CategoryIn, ProductCreate, ProductUpdate
from serve_app.deps import Admin, Ctx
from storage import catalog_store
from storage.catalog_store import CatalogConflict, ProductMissing

router = APIRouter(prefix="/admin", tags=["admin catalog"], responses={
    401: {"description": "No valid credentials"}, 403: {"description": "Not an admin"}})
_NOT_FOUND = {404: {"description": "No such product or category"}}
_CONFLICT = {409: {"description": "Slug or SKU already taken"}, 422: {"description": "Invalid body or unknown category"}}
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _conflict(exc: CatalogConflict):
    if exc.field == "slug":
        return SlugTaken(slug=exc.value)
    if exc.field == "sku":
        return SkuTaken(sku=exc.value)
    return UnknownCategory(**{exc.field: exc.value})


async def _product(ctx, product_id: int) -> dict:
    async with ctx.pool.acquire() as conn:
        product = await catalog_store.get_product(conn, product_id)
    if product is None:
        raise ProductNotFound(product_id=product_id)
    return product


@router.post("/products", status_code=status.HTTP_201_CREATED, responses=_CONFLICT)
async def create_product(ctx: Ctx, _: Admin, body: ProductCreate) -> dict:
    """New products are drafts unless `status` says otherwise; drafts are invisible to the public."""
    data = body.model_dump(mode="json", exclude={"variants"})
    try:
        pid = await catalog_store.create_product(ctx.pool, data, [v.model_dump(mode="json") for v in body.variants])
    except CatalogConflict as exc:
        raise _conflict(exc) from None
    return await _product(ctx, pid)


@router.get("/products/{product_id}", responses=_NOT_FOUND)
async def get_product(ctx: Ctx, _: Admin, product_id: Id) -> dict:
    return await _product(ctx, product_id)


@router.patch("/products/{product_id}", responses={**_NOT_FOUND, **_CONFLICT})
async def update_product(ctx: Ctx, _: Admin, product_id: Id, body: ProductUpdate) -> dict:
    """Changes the fields given; `variants`, when given, replaces the variant list."""
    changes = body.model_dump(mode="json", exclude_unset=True, exclude={"variants"})
    variants = [v.model_dump(mode="json") for v in body.variants] if body.variants is not None else None
    try:
        await catalog_store.update_product(ctx.pool, product_id, changes, variants)
    except CatalogConflict as exc:
        raise _conflict(exc) from None
    except ProductMissing:
        raise ProductNotFound(product_id=product_id) from None
    return await _product(ctx, product_id)


@router.delete("/products/{product_id}", responses=_NOT_FOUND)
async def archive_product(ctx: Ctx, _: Admin, product_id: Id) -> dict:
    """Archives (never deletes: orders and reviews keep pointing at it)."""
    try:
        await catalog_store.update_product(ctx.pool, product_id, {"status": "archived"})
    except ProductMissing:
        raise ProductNotFound(product_id=product_id) from None
    return await _product(ctx, product_id)


@router.post("/categories", status_code=status.HTTP_201_CREATED, responses=_CONFLICT)
async def create_category(ctx: Ctx, _: Admin, body: CategoryIn) -> dict:
    try:
        cid = await catalog_store.upsert_category(ctx.pool, body.slug, body.name, body.parent, body.description,
                                                  body.position)
    except CatalogConflict as exc:
        raise _conflict(exc) from None
    return {"id": cid, **body.model_dump()}


@router.put("/categories/{category_id}", responses={**_NOT_FOUND, **_CONFLICT})
async def update_category(ctx: Ctx, _: Admin, category_id: Id, body: CategoryIn) -> dict:
    try:
        await catalog_store.upsert_category(ctx.pool, body.slug, body.name, body.parent, body.description,
                                            body.position, category_id=category_id)
    except CatalogConflict as exc:
        raise _conflict(exc) from None
    except ProductMissing:
        raise NotFound("No such category.", category_id=category_id) from None
    return {"id": category_id, **body.model_dump()}
