"""Reviews at the store layer (the customer routes need the accounts branch's CurrentUser): one per
customer per product, verified by a paid-or-later order, moderation, and rating aggregates kept
current in the same transaction. Plus recommendations from inserted paid orders."""
from __future__ import annotations

import uuid

import pytest

from storage import recommendations_store, reviews_store
from tests.conftest import async_wait_for
from tests.integration.catalog_helpers import insert_order, make_product

pytestmark = pytest.mark.integration


async def rating(db, product_id):
    async with db.acquire() as conn:
        return await reviews_store.rating_of(conn, product_id)


async def test_one_review_per_customer_per_product_rewriting_replaces_it(api, admin_headers, db):
    p = await make_product(api, admin_headers)
    me = uuid.uuid4()
    first = await reviews_store.upsert_review(db, p["id"], me, 2, "meh", "not great")
    second = await reviews_store.upsert_review(db, p["id"], me, 5, "better", "grew on me")
    assert first["id"] == second["id"] and second["rating"] == 5 and second["title"] == "better"
    assert await db.fetchval("select count(*) from reviews where product_id = $1", p["id"]) == 1


async def test_verified_only_when_the_customer_bought_it(api, admin_headers, db):
    p = await make_product(api, admin_headers)
    other = await make_product(api, admin_headers)
    buyer, pending_buyer, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await insert_order(db, buyer, [(p["variants"][0]["sku"], p["id"], 1)], status="delivered")
    await insert_order(db, pending_buyer, [(p["variants"][0]["sku"], p["id"], 1)], status="pending_payment")
    await insert_order(db, stranger, [(other["variants"][0]["sku"], other["id"], 1)], status="paid")
    assert (await reviews_store.upsert_review(db, p["id"], buyer, 5, "", ""))["verified"] is True
    assert (await reviews_store.upsert_review(db, p["id"], pending_buyer, 4, "", ""))["verified"] is False
    assert (await reviews_store.upsert_review(db, p["id"], stranger, 1, "", ""))["verified"] is False


async def test_moderation_drives_visibility_and_aggregates(api, admin_headers, db):
    p = await make_product(api, admin_headers)
    a, b, c = [await reviews_store.upsert_review(db, p["id"], uuid.uuid4(), r, f"r{r}", "") for r in (5, 4, 1)]
    assert await rating(db, p["id"]) == {"average": 0.0, "count": 0}  # pending reviews are not counted
    for r in (a, b, c):
        await reviews_store.moderate(db, r["id"], "approved", "admin")
    assert await rating(db, p["id"]) == {"average": 3.33, "count": 3}
    await reviews_store.moderate(db, c["id"], "hidden", "admin")
    assert await rating(db, p["id"]) == {"average": 4.5, "count": 2}
    async with db.acquire() as conn:
        public = await reviews_store.approved_reviews(conn, p["id"])
    assert {r["id"] for r in public} == {a["id"], b["id"]}
    # editing an approved review sends it back to moderation and out of the aggregate
    me = uuid.UUID(a["customer_id"])
    await reviews_store.upsert_review(db, p["id"], me, 1, "changed my mind", "")
    assert await rating(db, p["id"]) == {"average": 4.0, "count": 1}
    assert await reviews_store.delete_review(db, p["id"], uuid.UUID(b["customer_id"])) is True
    assert await rating(db, p["id"]) == {"average": 0.0, "count": 0}
    assert await reviews_store.moderate(db, 10**12, "approved", "admin") is None


async def test_the_product_page_shows_the_rating_after_moderation(api, admin_headers, db):
    p = await make_product(api, admin_headers)
    assert (await api.get(f"/products/{p['slug']}")).json()["rating"]["count"] == 0  # now cached
    r = await reviews_store.upsert_review(db, p["id"], uuid.uuid4(), 4, "good", "")
    await reviews_store.moderate(db, r["id"], "approved", "admin")

    async def shown():
        return (await api.get(f"/products/{p['slug']}")).json()["rating"] == {"average": 4.0, "count": 1}
    await async_wait_for(shown, what="the rating change to invalidate the cached page")


async def test_bought_together_and_trending_from_paid_orders(api, admin_headers, db):
    kettle, mug, tea, spoon = [await make_product(api, admin_headers) for _ in range(4)]

    def line(p, q=1):
        return (p["variants"][0]["sku"], p["id"], q)
    for _ in range(3):
        await insert_order(db, uuid.uuid4(), [line(kettle), line(mug)])
    await insert_order(db, uuid.uuid4(), [line(kettle), line(tea, 50)], status="shipped")
    await insert_order(db, uuid.uuid4(), [line(kettle), line(spoon, 100)], status="cancelled")  # not a sale
    await insert_order(db, None, [line(kettle), line(spoon)], status="pending_payment")  # not a sale either
    async with db.acquire() as conn:
        assert await recommendations_store.bought_together(conn, kettle["id"]) == [mug["id"], tea["id"]]
        top = await recommendations_store.trending(conn, limit=50)
    assert top.index(tea["id"]) < top.index(kettle["id"]) and spoon["id"] not in top
    page = (await api.get(f"/products/{kettle['slug']}")).json()
    assert [c["slug"] for c in page["recommendations"]["bought_together"]] == [mug["slug"], tea["slug"]]


# --- the HTTP routes, with real customers (accounts' make_customer) ---------------------------------

async def test_customers_write_their_own_review_and_admins_moderate_it(api, admin_headers, db, make_customer):
    p = await make_product(api, admin_headers)
    alice, bob = await make_customer("Alice"), await make_customer("Bob")
    await insert_order(db, uuid.UUID(alice.user_id), [(p["variants"][0]["sku"], p["id"], 1)], status="paid")
    url = f"/products/{p['slug']}/reviews/mine"

    assert (await api.put(url, json={"rating": 5})).status_code == 401  # anonymous
    r = await api.put(url, json={"rating": 4, "title": "Nice", "author_name": "Alice"}, headers=alice.headers)
    assert r.status_code == 200 and r.json()["verified"] is True and r.json()["status"] == "pending"
    mine = r.json()
    again = await api.put(url, json={"rating": 5, "title": "Great"}, headers=alice.headers)
    assert again.json()["id"] == mine["id"] and again.json()["rating"] == 5  # one review per customer per product
    r = await api.put(url, json={"rating": 2, "title": "Meh"}, headers=bob.headers)
    assert r.json()["verified"] is False and r.json()["id"] != mine["id"]

    assert (await api.get(f"/products/{p['slug']}/reviews")).json()["items"] == []  # nothing approved yet
    pending = (await api.get("/admin/reviews", params={"status": "pending", "per_page": 100}, headers=admin_headers)).json()
    assert mine["id"] in [x["id"] for x in pending]
    assert (await api.post(f"/admin/reviews/{mine['id']}/moderation", json={"status": "approved"},
                           headers=alice.headers)).status_code == 403  # customers do not moderate
    r = await api.post(f"/admin/reviews/{mine['id']}/moderation", json={"status": "approved"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    public = (await api.get(f"/products/{p['slug']}/reviews")).json()
    assert [x["id"] for x in public["items"]] == [mine["id"]] and public["rating"] == {"average": 5.0, "count": 1}
    assert "customer_id" not in public["items"][0]

    # bob cannot touch alice's review: he only ever addresses his own
    assert (await api.delete(url, headers=bob.headers)).status_code == 204
    assert (await api.delete(url, headers=bob.headers)).status_code == 404
    assert (await api.get(url, headers=alice.headers)).json()["id"] == mine["id"]
    assert (await api.delete(url, headers=alice.headers)).status_code == 204
    assert (await api.get(f"/products/{p['slug']}/reviews")).json()["rating"] == {"average": 0.0, "count": 0}


async def test_review_bodies_are_validated(api, admin_headers, make_customer):
    p = await make_product(api, admin_headers)
    c = await make_customer()
    url = f"/products/{p['slug']}/reviews/mine"
    for body in ({"rating": 6}, {"rating": 0}, {"rating": 3, "verified": True}, {"rating": 3, "status": "approved"}):
        r = await api.put(url, json=body, headers=c.headers)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), body
    draft = await make_product(api, admin_headers, status="draft")
    assert (await api.put(f"/products/{draft['slug']}/reviews/mine", json={"rating": 3},
                          headers=c.headers)).status_code == 404
    assert (await api.post("/admin/reviews/1/moderation", json={"status": "deleted"},
                           headers=admin_headers)).status_code == 422
