"""Product search behind one interface (`base.SearchBackend`): PostgreSQL by default, Elasticsearch
when `ELASTICSEARCH_URL` is set. `create_backend` picks one."""
from __future__ import annotations

from storage.search.base import SearchBackend, SearchQuery, SearchResult


def create_backend(pool, elasticsearch_url: str | None = None, index: str = "surge-products",
                   categories=None, search_pool=None) -> SearchBackend:
    """`search_pool` (PostgreSQL only, from `postgres.create_search_pool`): searches in one round
    trip; the backend owns it and closes it."""
    if elasticsearch_url:
        from storage.search.elastic import ElasticBackend

        return ElasticBackend(pool, elasticsearch_url, index=index, categories=categories)
    from storage.search.postgres import PostgresBackend

    return PostgresBackend(pool, categories=categories, search_pool=search_pool)


__all__ = ["SearchBackend", "SearchQuery", "SearchResult", "create_backend"]
