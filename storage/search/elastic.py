"""Elasticsearch search through the official async client: the same `SearchQuery` in, the same
`SearchResult` out as the PostgreSQL backend.

The index holds one document per active product (id = product id), written by `index_products`:
the catalog event consumer calls it for every product event and stock flip, so the index follows
what committed. `reindex_all` rebuilds it from PostgreSQL (`python -m storage.search.elastic URL DSN`).
Typos are handled by `fuzziness: AUTO`, stemming by the `english` analyzer; attributes are indexed
as `key=value` keywords so one terms aggregation gives every attribute facet.
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch.helpers import async_bulk

from storage import catalog_store
from storage.search.base import (SearchHit, SearchQuery, SearchResult, attribute_facet, price_bucket_key,
                                 price_buckets, price_facet, rating_facet, roll_up_categories)

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "long"},
        "slug": {"type": "keyword"},
        "name": {"type": "text", "analyzer": "english", "fields": {"raw": {"type": "keyword"},
                                                                    "prefix": {"type": "search_as_you_type"}}},
        "description": {"type": "text", "analyzer": "english"},
        "tags": {"type": "text", "analyzer": "english", "fields": {"raw": {"type": "keyword"}}},
        "attr_pairs": {"type": "keyword"},
        "category_id": {"type": "long"},
        "price_min_minor": {"type": "long"},
        "price_max_minor": {"type": "long"},
        "compare_at_minor": {"type": "long"},
        "currency": {"type": "keyword"},
        "image_url": {"type": "keyword", "index": False},
        "in_stock": {"type": "boolean"},
        "rating_avg": {"type": "float"},
        "rating_count": {"type": "integer"},
        "created_at": {"type": "date", "format": "epoch_millis"},
    },
}
SETTINGS: dict[str, Any] = {"number_of_shards": 1}

_SORT = {
    "relevance": [{"_score": "desc"}, {"id": "asc"}],
    "price_asc": [{"price_min_minor": "asc"}, {"id": "asc"}],
    "price_desc": [{"price_min_minor": "desc"}, {"id": "asc"}],
    "newest": [{"created_at": "desc"}, {"id": "desc"}],
    "rating": [{"rating_avg": "desc"}, {"rating_count": "desc"}, {"id": "asc"}],
}


def to_document(row: dict[str, Any]) -> dict[str, Any]:
    """A product row (catalog_store.search_documents) as the index's document (pure)."""
    attrs = row.get("attributes") or {}
    return {
        "id": row["id"], "slug": row["slug"], "name": row["name"], "description": row["description"],
        "tags": list(row["tags"] or []), "attr_pairs": sorted(f"{k}={v}" for k, v in attrs.items()),
        "category_id": row["category_id"], "price_min_minor": row["price_min_minor"],
        "price_max_minor": row["price_max_minor"], "compare_at_minor": row["compare_at_minor"],
        "currency": row["currency"], "image_url": row["image_url"], "in_stock": row["in_stock"],
        "rating_avg": float(row["rating_avg"]), "rating_count": row["rating_count"],
        "created_at": int(row["created_at"] * 1000),
    }


def build_search_body(query: SearchQuery) -> dict[str, Any]:
    """The `_search` request body for a query (pure: unit-tested)."""
    filters: list[dict[str, Any]] = []
    if query.category_ids is not None:
        filters.append({"terms": {"category_id": list(query.category_ids)}})
    price: dict[str, int] = {}
    if query.price_min is not None:
        price["gte"] = query.price_min
    if query.price_max is not None:
        price["lt"] = query.price_max
    if price:
        filters.append({"range": {"price_min_minor": price}})
    if query.rating_min is not None:
        filters.append({"range": {"rating_avg": {"gte": query.rating_min}}})
    if query.in_stock is not None:
        filters.append({"term": {"in_stock": query.in_stock}})
    for k, v in query.attributes:
        filters.append({"term": {"attr_pairs": f"{k}={v}"}})
    q = " ".join(query.q.split())
    must = ([{"multi_match": {"query": q, "fields": ["name^3", "tags^2", "description"], "fuzziness": "AUTO",
                              "operator": "and"}}] if q else [{"match_all": {}}])
    ranges = [{"key": price_bucket_key(lo, hi), "from": lo, **({"to": hi} if hi is not None else {})}
              for lo, hi in price_buckets()]
    return {
        "query": {"bool": {"must": must, "filter": filters}},
        "sort": _SORT[query.effective_sort],
        "from": query.offset, "size": query.per_page, "track_total_hits": True,
        "aggs": {
            "categories": {"terms": {"field": "category_id", "size": 1000}},
            "prices": {"range": {"field": "price_min_minor", "ranges": ranges}},
            "ratings": {"range": {"field": "rating_avg", "ranges": [{"key": str(f), "from": f, "to": f + 1}
                                                                   for f in range(0, 6)]}},
            "stock": {"terms": {"field": "in_stock", "size": 2}},
            "attrs": {"terms": {"field": "attr_pairs", "size": 200}},
        },
    }


def parse_response(query: SearchQuery, resp: dict[str, Any], tree: catalog_store.CategoryTree) -> SearchResult:
    """A `_search` answer as a SearchResult with the same facet shapes as the PostgreSQL backend (pure)."""
    aggs = resp.get("aggregations", {})
    direct = {int(b["key"]): b["doc_count"] for b in aggs.get("categories", {}).get("buckets", [])}
    prices = {i: b["doc_count"] for i, b in enumerate(aggs.get("prices", {}).get("buckets", []), start=1)}
    ratings = {int(float(b["key"])): b["doc_count"] for b in aggs.get("ratings", {}).get("buckets", [])}
    stock = {bool(b["key"]): b["doc_count"] for b in aggs.get("stock", {}).get("buckets", [])}
    attrs = []
    for b in aggs.get("attrs", {}).get("buckets", []):
        k, _, v = str(b["key"]).partition("=")
        attrs.append((k, v, b["doc_count"]))
    hits = []
    for h in resp["hits"]["hits"]:
        s = h["_source"]
        hits.append(SearchHit(id=s["id"], slug=s["slug"], name=s["name"], price_min_minor=s["price_min_minor"],
                              price_max_minor=s["price_max_minor"], compare_at_minor=s.get("compare_at_minor"),
                              currency=s["currency"], image_url=s.get("image_url"), in_stock=s["in_stock"],
                              rating_avg=float(s["rating_avg"]), rating_count=s["rating_count"],
                              category_id=s.get("category_id")))
    total = resp["hits"]["total"]
    return SearchResult(
        total=total["value"] if isinstance(total, dict) else int(total), page=query.page, per_page=query.per_page,
        hits=hits,
        facets={"category": roll_up_categories(direct, tree.parents, tree.names), "price": price_facet(prices),
                "rating": rating_facet(ratings),
                "in_stock": [{"value": v, "count": stock[v]} for v in (True, False) if stock.get(v)],
                "attributes": attribute_facet(attrs)})


class ElasticBackend:
    def __init__(self, pool, url: str, index: str = "surge-products", categories=None, **client_options: Any):
        self.pool = pool
        self.index = index
        self.client = AsyncElasticsearch(url, request_timeout=10, **client_options)
        self.categories = categories or catalog_store.CategorySource(pool)
        self._ready = False

    async def ensure_index(self) -> None:
        if self._ready:
            return
        if not await self.client.indices.exists(index=self.index):
            await self.client.indices.create(index=self.index, mappings=MAPPINGS, settings=SETTINGS)
        self._ready = True

    async def search(self, query: SearchQuery) -> SearchResult:
        await self.ensure_index()
        resp = await self.client.search(index=self.index, body=build_search_body(query))
        tree = await self.categories.get()
        return parse_response(query, dict(resp), tree)

    async def suggest(self, prefix: str, limit: int = 8) -> list[dict[str, Any]]:
        p = " ".join(prefix.split())
        if len(p) < 2:
            return []
        await self.ensure_index()
        resp = await self.client.search(index=self.index, body={
            "size": limit, "_source": ["name", "slug"],
            "query": {"multi_match": {"query": p, "type": "bool_prefix",
                                      "fields": ["name.prefix", "name.prefix._2gram", "name.prefix._3gram"]}}})
        return [{"kind": "product", "text": h["_source"]["name"], "slug": h["_source"]["slug"]}
                for h in resp["hits"]["hits"]]

    async def index_products(self, product_ids: Iterable[int]) -> int:
        """Index active products, delete the rest (drafts, archived, gone). Returns operations sent."""
        ids = list(product_ids)
        if not ids:
            return 0
        await self.ensure_index()
        async with self.pool.acquire() as conn:
            rows = {r["id"]: r for r in await catalog_store.search_documents(conn, ids)}
        actions = []
        for pid in ids:
            row = rows.get(pid)
            if row is not None and row["status"] == "active":
                actions.append({"_op_type": "index", "_index": self.index, "_id": str(pid), "_source": to_document(row)})
            else:
                actions.append({"_op_type": "delete", "_index": self.index, "_id": str(pid)})
        # a delete of a document that was never indexed answers 404: not an error here
        await async_bulk(self.client, actions, raise_on_error=False, raise_on_exception=True)
        return len(actions)

    async def reindex_all(self, batch: int = 2000) -> int:
        done, last = 0, 0
        while True:
            async with self.pool.acquire() as conn:
                ids = [r["id"] for r in await conn.fetch(
                    "select id from products where id > $1 order by id limit $2", last, batch)]
            if not ids:
                return done
            done += await self.index_products(ids)
            last = ids[-1]

    async def delete_index(self) -> None:
        try:
            await self.client.indices.delete(index=self.index)
        except NotFoundError:
            pass
        self._ready = False

    async def close(self) -> None:
        await self.client.close()


async def _reindex(url: str, dsn: str) -> None:
    from storage.pool import create_pool

    pool = await create_pool(dsn)
    backend = ElasticBackend(pool, url)
    try:
        print(f"indexed {await backend.reindex_all()} products into {backend.index}")
    finally:
        await backend.close()
        await pool.close()


if __name__ == "__main__":  # python -m storage.search.elastic ELASTICSEARCH_URL DATABASE_URL
    asyncio.run(_reindex(sys.argv[1], sys.argv[2]))
