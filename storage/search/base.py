"""The search contract both backends honour, and the pure parts they share (facet buckets, roll-ups).

Facet semantics (both backends): counts are over the current result set, every filter applied, so
adding a facet value as a filter returns exactly that many results. Category counts include the
category's whole subtree. Pagination is stable: every sort ends with the product id.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Sort = Literal["relevance", "price_asc", "price_desc", "newest", "rating"]
SORTS: tuple[str, ...] = ("relevance", "price_asc", "price_desc", "newest", "rating")

# Price buckets in minor units: [lo, hi), the last one open-ended.
PRICE_EDGES: tuple[int, ...] = (0, 2_500, 5_000, 10_000, 25_000, 50_000)
RATING_STEPS: tuple[int, ...] = (4, 3, 2, 1)  # "4 and up", ...
MAX_ATTRIBUTE_KEYS = 8
MAX_ATTRIBUTE_VALUES = 12


@dataclass(frozen=True)
class SearchQuery:
    q: str = ""
    category_ids: tuple[int, ...] | None = None  # the chosen category's subtree, resolved by the caller
    category: str | None = None  # the slug it came from (for cache keys and echoing back)
    price_min: int | None = None  # minor units, inclusive
    price_max: int | None = None  # minor units, exclusive
    rating_min: int | None = None
    in_stock: bool | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # (key, value) pairs, all must hold
    sort: Sort = "relevance"
    page: int = 1
    per_page: int = 24

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def effective_sort(self) -> str:
        """Relevance means nothing without a text query: newest first then."""
        return "newest" if self.sort == "relevance" and not self.q.strip() else self.sort

    def cache_parts(self) -> tuple:
        """A canonical, hashable form: two queries that mean the same give the same parts."""
        return (" ".join(self.q.lower().split()), self.category, self.price_min, self.price_max, self.rating_min,
                self.in_stock, tuple(sorted(self.attributes)), self.effective_sort, self.page, self.per_page)


@dataclass
class SearchHit:
    id: int
    slug: str
    name: str
    price_min_minor: int
    price_max_minor: int
    compare_at_minor: int | None
    currency: str
    image_url: str | None
    in_stock: bool
    rating_avg: float
    rating_count: int
    category_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SearchResult:
    total: int
    page: int
    per_page: int
    hits: list[SearchHit]
    facets: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "page": self.page, "per_page": self.per_page,
                "hits": [h.to_dict() for h in self.hits], "facets": self.facets}


class SearchBackend(Protocol):
    async def search(self, query: SearchQuery) -> SearchResult: ...

    async def suggest(self, prefix: str, limit: int = 8) -> list[dict[str, Any]]: ...

    async def index_products(self, product_ids: Iterable[int]) -> int:
        """Bring the index up to date for these products (a no-op where the index is the database)."""
        ...

    async def close(self) -> None: ...


# --- facet helpers (pure) -------------------------------------------------------------------------

def price_bucket_key(lo: int, hi: int | None) -> str:
    return f"{lo}-{hi}" if hi is not None else f"{lo}-"


def price_buckets() -> list[tuple[int, int | None]]:
    edges = list(PRICE_EDGES)
    return [(lo, edges[i + 1] if i + 1 < len(edges) else None) for i, lo in enumerate(edges)]


def bucket_for_price(price_minor: int) -> tuple[int, int | None]:
    for lo, hi in price_buckets():
        if price_minor >= lo and (hi is None or price_minor < hi):
            return lo, hi
    return price_buckets()[0]


def price_facet(counts_by_bucket_index: Mapping[int, int]) -> list[dict[str, Any]]:
    """Buckets in order with counts (`width_bucket` indexes, 1-based), empty ones left out."""
    out = []
    for i, (lo, hi) in enumerate(price_buckets(), start=1):
        n = int(counts_by_bucket_index.get(i, 0))
        if n:
            out.append({"key": price_bucket_key(lo, hi), "min": lo, "max": hi, "count": n})
    return out


def rating_facet(counts_by_floor: Mapping[int, int]) -> list[dict[str, Any]]:
    """'N and up' buckets from counts per floor(rating) (0..5): each bucket sums its floors and above."""
    out = []
    for step in RATING_STEPS:
        n = sum(int(c) for floor, c in counts_by_floor.items() if floor >= step)
        if n:
            out.append({"key": f"{step}+", "min": step, "count": n})
    return out


def roll_up_categories(direct: Mapping[int, int], parents: Mapping[int, int | None],
                       names: Mapping[int, tuple[str, str]]) -> list[dict[str, Any]]:
    """Counts per category including every descendant's products.

    `direct`: products per category id; `parents`: id -> parent id; `names`: id -> (slug, name).
    Returns the categories with a non-zero count, largest first (then by slug)."""
    total: dict[int, int] = {}
    for cid, n in direct.items():
        seen = set()
        node: int | None = cid
        while node is not None and node not in seen:  # a cycle would be a data bug; never loop on it
            seen.add(node)
            total[node] = total.get(node, 0) + int(n)
            node = parents.get(node)
    rows = [{"id": cid, "slug": names[cid][0], "name": names[cid][1], "parent_id": parents.get(cid), "count": n}
            for cid, n in total.items() if n and cid in names]
    return sorted(rows, key=lambda r: (-r["count"], r["slug"]))


def subtree_ids(root: int, parents: Mapping[int, int | None]) -> tuple[int, ...]:
    children: dict[int | None, list[int]] = {}
    for cid, parent in parents.items():
        children.setdefault(parent, []).append(cid)
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        if node in out:
            continue
        out.append(node)
        stack.extend(children.get(node, ()))
    return tuple(sorted(out))


def attribute_facet(rows: Iterable[tuple[str, str, int]]) -> dict[str, list[dict[str, Any]]]:
    """(key, value, count) rows -> {key: [{value, count}]}, the most common keys and values first."""
    by_key: dict[str, list[tuple[str, int]]] = {}
    for key, value, n in rows:
        by_key.setdefault(key, []).append((value, int(n)))
    ranked = sorted(by_key.items(), key=lambda kv: (-sum(n for _, n in kv[1]), kv[0]))[:MAX_ATTRIBUTE_KEYS]
    return {k: [{"value": v, "count": n} for v, n in sorted(vals, key=lambda x: (-x[1], x[0]))[:MAX_ATTRIBUTE_VALUES]]
            for k, vals in ranked}


def parse_attribute_filters(raw: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """`key:value` strings -> pairs; raises ValueError on a malformed one."""
    out = []
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"attribute filter must be key:value, got {item!r}")
        out.append((key.strip(), value.strip()))
    return tuple(sorted(set(out)))
