"""The storefront's catalog reads: product pages, listings, search and suggestions, read through
the Valkey cache (`storage/catalog_cache.py`). Built once per replica."""
from __future__ import annotations

from typing import Any

import asyncpg

from storage import catalog_store, recommendations_store
from storage.catalog_cache import LISTINGS_VERSION, CatalogCache, product_version_key
from storage.search.base import SearchBackend, SearchQuery

TRENDING_TTL_S = 300
SUGGEST_TTL_S = 120


class CatalogReads:
    def __init__(self, pool: asyncpg.Pool, cache: CatalogCache, search: SearchBackend,
                 categories: catalog_store.CategorySource):
        self.pool = pool
        self.cache = cache
        self.search_backend = search
        self.categories = categories

    async def product_page(self, slug: str) -> tuple[dict[str, Any] | None, str]:
        """An active product with variants (price, in stock), breadcrumb, rating and recommendations.
        Cached per slug; a product or rating change, or a variant's sell-out/restock, bumps its version."""
        return await self.cache.read_through("page", [slug], [product_version_key(slug)],
                                             lambda: self._load_page(slug))

    async def _load_page(self, slug: str) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            product = await catalog_store.get_public_product(conn, slug)
            if product is None:
                return None
            together = await recommendations_store.bought_together(conn, product["id"])
            together_cards = await catalog_store.product_cards(conn, together)
        cid = product.pop("category_id")
        tree = await self.categories.get()
        if cid is not None and cid not in tree.names:  # a category newer than this replica's copy
            tree = await self.categories.get(refresh=True)
        product["category"] = tree.breadcrumb(cid)
        product["rating"] = {"average": product.pop("rating_avg"), "count": product.pop("rating_count")}
        trending = [c for c in await self.trending() if c["id"] != product["id"]]
        product["recommendations"] = {"bought_together": together_cards, "trending": trending}
        return product

    async def trending(self) -> list[dict[str, Any]]:
        async def load():
            async with self.pool.acquire() as conn:
                return await catalog_store.product_cards(conn, await recommendations_store.trending(conn))

        value, _ = await self.cache.read_through("trending", [], [], load, ttl_s=TRENDING_TTL_S)
        return value

    async def search(self, query: SearchQuery) -> tuple[bytes, str]:
        """The answer as JSON bytes: a cached answer is handed on as stored, not parsed and re-encoded."""
        async def load():
            return (await self.search_backend.search(query)).to_dict()

        return await self.cache.read_through_json("search", query.cache_parts(), [LISTINGS_VERSION], load)

    async def suggest(self, prefix: str, limit: int) -> tuple[list[dict[str, Any]], str]:
        async def load():
            return await self.search_backend.suggest(prefix, limit)

        return await self.cache.read_through("suggest", [prefix.lower().strip(), limit], [LISTINGS_VERSION], load,
                                             ttl_s=SUGGEST_TTL_S)

    async def category_tree(self) -> tuple[list[dict[str, Any]], str]:
        async def load():
            return (await self.categories.get(refresh=True)).as_nested()

        return await self.cache.read_through("categories", [], [LISTINGS_VERSION], load)
