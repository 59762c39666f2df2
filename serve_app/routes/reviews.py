"""Reviews: public reading of approved reviews, a customer's own review (one per product; writing
again replaces it and sends it back to moderation), and admin moderation. A review is always
addressed through its owner (`/mine`): nobody can reach another customer's review to change it."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status

from actors.domain.errors import ProductNotFound, ReviewNotFound
from serve_app.catalog_schemas import ModerationIn, ReviewIn, Slug
from serve_app.deps import AdminUser, Ctx, CurrentUser
from storage import catalog_store, reviews_store

router = APIRouter(tags=["reviews"])
_PRODUCT = {404: {"description": "No such active product (or no review of yours)"}}
_MINE = {**_PRODUCT, 401: {"description": "Sign in first"}}
_ADMIN = {401: {"description": "No valid credentials"}, 403: {"description": "Not an admin"}}


async def _product_id(ctx, slug: str) -> int:
    async with ctx.pool.acquire() as conn:
        pid = await catalog_store.active_product_id(conn, slug)
    if pid is None:
        raise ProductNotFound(slug=slug)
    return pid


@router.get("/products/{slug}/reviews", responses=_PRODUCT)
async def product_reviews(ctx: Ctx, slug: Slug, page: Annotated[int, Query(ge=1, le=1000)] = 1,
                          per_page: Annotated[int, Query(ge=1, le=50)] = 20) -> dict:
    """Approved reviews, newest first, with the product's rating aggregate."""
    pid = await _product_id(ctx, slug)
    async with ctx.pool.acquire() as conn:
        items = await reviews_store.approved_reviews(conn, pid, per_page, (page - 1) * per_page)
        rating = await reviews_store.rating_of(conn, pid)
    for item in items:
        item.pop("customer_id")  # public: who wrote it is the author name they chose, not their id
    return {"rating": rating, "page": page, "per_page": per_page, "items": items}


@router.get("/products/{slug}/reviews/mine", responses=_MINE)
async def my_review(ctx: Ctx, user: CurrentUser, slug: Slug) -> dict:
    pid = await _product_id(ctx, slug)
    async with ctx.pool.acquire() as conn:
        review = await reviews_store.own_review(conn, pid, user.user_id)
    if review is None:
        raise ReviewNotFound()
    return review


@router.put("/products/{slug}/reviews/mine", responses=_MINE)
async def write_my_review(ctx: Ctx, user: CurrentUser, slug: Slug, body: ReviewIn) -> dict:
    """Create or replace the caller's review; `verified` says whether they bought the product.
    It waits for moderation before it is public and counted."""
    pid = await _product_id(ctx, slug)
    try:
        return await reviews_store.upsert_review(ctx.pool, pid, user.user_id, body.rating, body.title, body.body,
                                                 body.author_name)
    except LookupError:
        raise ProductNotFound(slug=slug) from None


@router.delete("/products/{slug}/reviews/mine", status_code=status.HTTP_204_NO_CONTENT, responses=_MINE)
async def delete_my_review(ctx: Ctx, user: CurrentUser, slug: Slug) -> None:
    pid = await _product_id(ctx, slug)
    if not await reviews_store.delete_review(ctx.pool, pid, user.user_id):
        raise ReviewNotFound()


@router.get("/admin/reviews", responses=_ADMIN)
async def reviews_to_moderate(ctx: Ctx, _: AdminUser, status: Literal["pending", "approved", "hidden"] = "pending",
                              page: Annotated[int, Query(ge=1, le=1000)] = 1,
                              per_page: Annotated[int, Query(ge=1, le=100)] = 50) -> list[dict]:
    async with ctx.pool.acquire() as conn:
        return await reviews_store.reviews_by_status(conn, status, per_page, (page - 1) * per_page)


@router.post("/admin/reviews/{review_id}/moderation", responses={**_ADMIN, 404: {"description": "No such review"}})
async def moderate_review(ctx: Ctx, admin: AdminUser, review_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
                          body: ModerationIn) -> dict:
    """Approve, hide, or send back to pending; the product's rating follows in the same transaction."""
    moderator = admin.email or "service-token"
    review = await reviews_store.moderate(ctx.pool, review_id, body.status, moderator)
    if review is None:
        raise ReviewNotFound(review_id=review_id)
    return review
