"""Pure parts of search: the SQL and Elasticsearch request a query becomes, facet bucketing and
roll-ups, cache keys, and which events invalidate what."""
from __future__ import annotations

import json

import pytest

from actors.catalog_events import invalidations
from storage.catalog_cache import cache_key, product_version_key
from storage.search.base import (SearchQuery, attribute_facet, bucket_for_price, parse_attribute_filters, price_facet,
                                 rating_facet, roll_up_categories, subtree_ids)
from storage.search.elastic import build_search_body, to_document
from storage.search.postgres import build_search_sql, build_suggest_sql

pytestmark = pytest.mark.unit


def test_text_query_matches_full_text_or_trigram_and_ranks_by_both():
    sql, args = build_search_sql(SearchQuery(q="  running   shoes "))
    assert args[0] == "running shoes"
    assert "search_doc @@ websearch_to_tsquery('english', $1)" in sql and "p.name %> $1" in sql
    assert "order by rank desc, id" in sql


def test_no_text_means_newest_first_and_no_text_condition():
    sql, args = build_search_sql(SearchQuery())
    assert "websearch_to_tsquery" not in sql and "order by created_at desc, id desc" in sql
    assert "p.status = 'active'" in sql


def test_every_filter_becomes_a_parameter_never_sql_text():
    evil = "x'; drop table products; --"
    q = SearchQuery(q=evil, category_ids=(3, 4), price_min=100, price_max=500, rating_min=4, in_stock=True,
                    attributes=(("color", evil),), sort="price_desc", page=3, per_page=10)
    sql, args = build_search_sql(q)
    assert evil not in sql and "drop table" not in sql
    assert [3, 4] in args and 100 in args and 500 in args and 4 in args and True in args
    assert json.dumps({"color": evil}) in args
    assert args[-2:] == [10, 20]  # limit, offset
    assert "p.price_min_minor >= " in sql and "p.price_min_minor < " in sql
    assert "order by price_min_minor desc, id" in sql


def test_suggest_uses_a_prefix_for_short_input_and_escapes_like_wildcards():
    sql, args = build_suggest_sql("ab", 5)
    assert "lower(p.name) like $2" in sql and args[1] == "ab%"
    sql, args = build_suggest_sql("50%_off", 5)
    assert args[1] == "%50\\%\\_off%" and "p.name %> $1" in sql


def test_price_buckets_are_half_open_and_cover_everything():
    assert bucket_for_price(0) == (0, 2500)
    assert bucket_for_price(2499) == (0, 2500)
    assert bucket_for_price(2500) == (2500, 5000)
    assert bucket_for_price(10**9) == (50000, None)
    assert price_facet({1: 2, 6: 1, 3: 0}) == [
        {"key": "0-2500", "min": 0, "max": 2500, "count": 2}, {"key": "50000-", "min": 50000, "max": None, "count": 1}]


def test_rating_buckets_are_cumulative():
    assert rating_facet({5: 1, 4: 2, 3: 1, 1: 1}) == [
        {"key": "4+", "min": 4, "count": 3}, {"key": "3+", "min": 3, "count": 4},
        {"key": "2+", "min": 2, "count": 4}, {"key": "1+", "min": 1, "count": 5}]


def test_category_counts_roll_up_to_every_ancestor():
    parents = {1: None, 2: 1, 3: 2, 4: 1, 5: None}
    names = {i: (f"c{i}", f"C{i}") for i in parents}
    rows = roll_up_categories({3: 2, 4: 1, 5: 4}, parents, names)
    assert {r["slug"]: r["count"] for r in rows} == {"c1": 3, "c2": 2, "c3": 2, "c4": 1, "c5": 4}
    assert rows[0]["slug"] == "c5"
    assert subtree_ids(1, parents) == (1, 2, 3, 4)
    assert roll_up_categories({1: 1}, {1: 2, 2: 1}, {1: ("a", "A"), 2: ("b", "B")})  # a cycle ends, it does not hang


def test_attribute_facets_rank_keys_and_values_and_filters_parse():
    facet = attribute_facet([("color", "red", 2), ("color", "blue", 5), ("size", "l", 1)])
    assert list(facet) == ["color", "size"] and facet["color"][0] == {"value": "blue", "count": 5}
    assert parse_attribute_filters(["size:l", "color: red", "size:l"]) == (("color", "red"), ("size", "l"))
    with pytest.raises(ValueError):
        parse_attribute_filters(["nocolon"])


def test_cache_keys_change_with_versions_and_parts_but_not_with_spelling():
    a = SearchQuery(q="Red  Shoes", attributes=(("b", "1"), ("a", "2")))
    b = SearchQuery(q="red shoes", attributes=(("a", "2"), ("b", "1")))
    assert cache_key("search", a.cache_parts(), [b"3"]) == cache_key("search", b.cache_parts(), [b"3"])
    assert cache_key("search", a.cache_parts(), [b"3"]) != cache_key("search", a.cache_parts(), [b"4"])
    assert cache_key("search", a.cache_parts(), [None]) == cache_key("search", a.cache_parts(), [b"0"])
    assert cache_key("search", SearchQuery(q="x", page=2).cache_parts(), []) != cache_key(
        "search", SearchQuery(q="x").cache_parts(), [])
    assert cache_key("page", ["s"], [b"1"]).startswith("surge:c:page:1:")
    assert product_version_key("lamp") == "surge:cver:product:lamp"


def test_product_events_invalidate_old_and_new_slug_and_only_stock_flips_count():
    entries = [
        ("catalog", {"type": "ProductUpdated", "key": "product:7",
                     "payload": json.dumps({"product_id": 7, "slug": "new", "old_slug": "old"})}),
        ("inventory", {"type": "StockLevelChanged", "key": "SKU-1", "payload": "{}"}),
        ("inventory", {"type": "SoldOut", "key": "SKU-2", "payload": "{}"}),
        ("inventory", {"type": "BackInStock", "key": "SKU-3", "payload": "{}"}),
        ("catalog", {"type": "ProductCreated", "key": "product:8", "payload": "not json"}),
    ]
    slugs, skus, ids = invalidations(entries)
    assert slugs == {"new", "old"} and skus == {"SKU-2", "SKU-3"} and ids == {7}


def test_elasticsearch_body_filters_sorts_and_aggregates():
    body = build_search_body(SearchQuery(q="lamp", category_ids=(1, 2), price_min=100, in_stock=False,
                                         attributes=(("color", "red"),), sort="price_asc", page=2, per_page=5))
    must = body["query"]["bool"]["must"][0]["multi_match"]
    assert must["fuzziness"] == "AUTO" and must["fields"][0] == "name^3"
    assert {"terms": {"category_id": [1, 2]}} in body["query"]["bool"]["filter"]
    assert {"range": {"price_min_minor": {"gte": 100}}} in body["query"]["bool"]["filter"]
    assert {"term": {"in_stock": False}} in body["query"]["bool"]["filter"]
    assert body["sort"][0] == {"price_min_minor": "asc"} and body["from"] == 5 and body["size"] == 5
    assert body["aggs"]["prices"]["range"]["ranges"][-1] == {"key": "50000-", "from": 50000}
    assert build_search_body(SearchQuery())["query"]["bool"]["must"] == [{"match_all": {}}]


def test_search_document_carries_attributes_as_pairs():
    doc = to_document({"id": 1, "slug": "s", "name": "N", "description": "d", "tags": ["t"],
                       "attributes": {"color": "red"}, "category_id": 2, "price_min_minor": 5, "price_max_minor": 9,
                       "compare_at_minor": None, "currency": "USD", "image_url": None, "in_stock": True,
                       "rating_avg": 4.5, "rating_count": 2, "created_at": 10.5})
    assert doc["attr_pairs"] == ["color=red"] and doc["created_at"] == 10500


def test_grouping_sets_rows_split_into_facets():
    from storage.search.postgres import split_facet_rows

    # grouping() bits for (category_id, b, fl, in_stock, attributes): 1 = that column not grouped
    rows = [[31, None, None, None, None, 9], [15, 4, None, None, None, 6], [15, 5, None, None, None, 3],
            [23, None, 2, None, None, 9], [27, None, None, 4, None, 2], [27, None, None, None, None, 7],
            [29, None, None, None, True, 5], [29, None, None, None, False, 4]]
    total, cats, prices, ratings, stock = split_facet_rows(rows)
    assert total == 9 and cats == {4: 6, 5: 3} and prices == {2: 9} and ratings == {4: 2}
    assert stock == {True: 5, False: 4}
    sql, _ = build_search_sql(SearchQuery(q="lamp", sort="price_asc"))
    assert "ts_rank_cd" not in sql  # relevance is computed only when it orders the results
    assert "grouping sets ((category_id), (b), (fl), (in_stock), (attributes), ())" in sql


def test_text_free_listings_sum_facet_cells_and_text_searches_count_rows():
    from storage.search.postgres import build_listing_sql, uses_facet_cells

    assert uses_facet_cells(SearchQuery(category_ids=(1,), price_min=2500, price_max=10000, rating_min=4))
    assert not uses_facet_cells(SearchQuery(q="lamp"))
    assert not uses_facet_cells(SearchQuery(price_min=2600))  # inside a bucket: count the rows
    sql, args = build_listing_sql(SearchQuery(category_ids=(3, 4), price_min=2500, rating_min=4, in_stock=True,
                                              attributes=(("color", "red"),), sort="price_desc", page=2, per_page=10))
    assert "from search_facet_cells where" in sql and "from search_facet_deltas where" in sql
    assert "count(*)" not in sql and "having sum(n) <> 0" in sql
    assert "price_bucket >= search_price_bucket(" in sql and "rating_floor >= " in sql
    assert "order by price_min_minor desc, id asc limit" in sql
    assert args[-2:] == [10, 10] and json.dumps({"color": "red"}) in args


def test_the_cells_price_buckets_are_the_facet_price_edges():
    from pathlib import Path

    from storage.search.base import PRICE_EDGES

    migration = (Path(__file__).parents[2] / "storage/migrations/0007_search_facets.sql").read_text()
    edges = "{" + ",".join(str(e) for e in PRICE_EDGES) + "}"
    assert f"width_bucket(price, '{edges}'::int8[])" in migration
