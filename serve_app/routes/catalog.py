"""Public catalog reads: product pages by slug, category listings, the category tree, search and
suggestions. Only active products are visible. `X-Cache` says whether the answer came from the
cache (hit), was loaded and stored (miss), or came from the database because the cache is down
(bypass)."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from actors.domain.errors import NotFound, ProductNotFound, UnknownCategory, ValidationFailed
from serve_app.catalog_schemas import Slug
from serve_app.deps import Ctx
from serve_app.ratelimit import RateLimit
from storage.search.base import SORTS, SearchQuery, parse_attribute_filters, subtree_ids

router = APIRouter(tags=["catalog"])
# per client address, `search` in SURGE_RATE_LIMITS (429 + Retry-After past it)
SearchLimit = [Depends(RateLimit("search"))]

SortParam = Literal["relevance", "price_asc", "price_desc", "newest", "rating"]
assert set(SortParam.__args__) == set(SORTS)


@router.get("/products/{slug}", responses={404: {"description": "No such active product"}})
async def product_page(ctx: Ctx, slug: Slug, response: Response) -> dict:
    """An active product: variants with prices and in-stock flags, breadcrumb, rating aggregate,
    "bought together" and "trending now". Live stock counts come from `/inventory/levels` and the hub."""
    page, how = await ctx.catalog.product_page(slug)
    response.headers["X-Cache"] = how
    if page is None:
        raise ProductNotFound(slug=slug)
    return page


@router.get("/categories")
async def categories(ctx: Ctx, response: Response) -> list[dict]:
    tree, how = await ctx.catalog.category_tree()
    response.headers["X-Cache"] = how
    return tree


async def _query(ctx, q: str, category: str | None, price_min: int | None, price_max: int | None,
                 rating_min: int | None, in_stock: bool | None, attr: list[str], sort: str, page: int,
                 per_page: int, missing_category=UnknownCategory) -> SearchQuery:
    ids = None
    if category is not None:
        cid = await ctx.catalog.categories.resolve(category)
        if cid is None:
            raise missing_category(category=category)
        ids = subtree_ids(cid, (await ctx.catalog.categories.get()).parents)
    try:
        attributes = parse_attribute_filters(attr)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    return SearchQuery(q=q, category_ids=ids, category=category, price_min=price_min, price_max=price_max,
                       rating_min=rating_min, in_stock=in_stock, attributes=attributes, sort=sort, page=page,
                       per_page=per_page)


Q = Annotated[str, Query(max_length=200)]
PriceMin = Annotated[int | None, Query(ge=0, description="minor units, inclusive")]
PriceMax = Annotated[int | None, Query(ge=0, description="minor units, exclusive")]
RatingMin = Annotated[int | None, Query(ge=1, le=5)]
Attr = Annotated[list[str], Query(max_length=10, description="key:value, e.g. color:Black (all must hold)")]
Page = Annotated[int, Query(ge=1, le=1000)]
PerPage = Annotated[int, Query(ge=1, le=100)]


def _json(body: bytes, how: str) -> Response:
    """A search answer as the JSON bytes the cache holds or stored (FastAPI would re-encode a dict)."""
    return Response(content=body, media_type="application/json", headers={"X-Cache": how})


@router.get("/search", dependencies=SearchLimit, response_model=dict, responses={
    422: {"description": "Invalid parameters or unknown category"}, 429: {"description": "Rate limited"}})
async def search(ctx: Ctx, q: Q = "", category: Slug | None = None, price_min: PriceMin = None,
                 price_max: PriceMax = None, rating_min: RatingMin = None, in_stock: bool | None = None,
                 attr: Attr = [], sort: SortParam = "relevance", page: Page = 1, per_page: PerPage = 24) -> Response:
    """Full-text search with typo tolerance; facets count the whole result set (every filter applied),
    categories including their subtrees."""
    query = await _query(ctx, q, category, price_min, price_max, rating_min, in_stock, attr, sort, page, per_page)
    return _json(*await ctx.catalog.search(query))


@router.get("/search/suggest", dependencies=SearchLimit, responses={429: {"description": "Rate limited"}})
async def suggest(ctx: Ctx, response: Response, q: Annotated[str, Query(min_length=1, max_length=100)],
                  limit: Annotated[int, Query(ge=1, le=20)] = 8) -> list[dict]:
    """Suggestions as you type: product names (then categories) matching the typed text."""
    items, how = await ctx.catalog.suggest(q, limit)
    response.headers["X-Cache"] = how
    return items


@router.get("/categories/{slug}/products", response_model=dict, responses={404: {"description": "No such category"}})
async def category_listing(ctx: Ctx, slug: Slug, price_min: PriceMin = None,
                           price_max: PriceMax = None, rating_min: RatingMin = None, in_stock: bool | None = None,
                           attr: Attr = [], sort: SortParam = "newest", page: Page = 1, per_page: PerPage = 24) -> Response:
    """The active products of a category and its subcategories, with the same facets as search."""
    query = await _query(ctx, "", slug, price_min, price_max, rating_min, in_stock, attr, sort, page, per_page,
                         missing_category=NotFound)
    return _json(*await ctx.catalog.search(query))
