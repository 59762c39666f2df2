"""Accounts over HTTP against the shared stack: registration, the OAuth2 password flow, page
sessions in cookies, refresh rotation with reuse detection, sign-out, passwords, rate limits."""
from __future__ import annotations

import hashlib
import re
import uuid

import httpx
import pytest

from tests.conftest import DEMO_ADMIN, DEMO_CUSTOMER, sign_in

pytestmark = pytest.mark.integration


def unique_email() -> str:
    return f"u-{uuid.uuid4().hex[:12]}@example.test"


async def test_register_then_sign_in_with_the_password_flow_gives_a_working_access_token(api, make_customer):
    customer = await make_customer(name="Ada")
    r = await api.get("/account", headers=customer.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["email"] == customer.email and body["id"] == customer.user_id
    assert body["role"] == "customer" and body["status"] == "active" and body["name"] == "Ada"


async def test_registration_cannot_set_role_or_status(api):
    r = await api.post("/auth/register", json={"email": unique_email(), "password": "long-enough-1", "role": "admin"})
    assert r.status_code == 422 and r.json()["code"] == "validation"
    r = await api.post("/auth/register", json={"email": unique_email(), "password": "long-enough-1", "status": "active"})
    assert r.status_code == 422


async def test_an_email_registers_once_whatever_its_case(api):
    email = unique_email()
    assert (await api.post("/auth/register", json={"email": email, "password": "long-enough-1"})).status_code == 201
    r = await api.post("/auth/register", json={"email": email.upper(), "password": "long-enough-2"})
    assert r.status_code == 409 and r.json()["code"] == "email_taken"


async def test_sign_in_with_a_wrong_password_or_an_unknown_email_gives_the_same_401(api, make_customer):
    customer = await make_customer()
    wrong = await api.post("/auth/token", data={"username": customer.email, "password": "not-the-password"})
    unknown = await api.post("/auth/token", data={"username": unique_email(), "password": "not-the-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "invalid_credentials"
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_the_demo_accounts_exist_with_their_roles(api):
    for (email, password), role in ((DEMO_CUSTOMER, "customer"), (DEMO_ADMIN, "admin")):
        tokens = await sign_in(str(api.base_url), email, password)
        r = await api.get("/account", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert r.status_code == 200 and r.json()["role"] == role


async def test_account_routes_need_credentials_and_refuse_garbage(api, admin_headers):
    r = await api.get("/account")
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    assert r.headers["content-type"] == "application/problem+json"
    r = await api.get("/account", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    # the service token is an admin without a user: "my account" means nothing for it
    assert (await api.get("/account", headers=admin_headers)).status_code == 403


async def test_admin_inventory_routes_take_the_service_token_or_an_admin_jwt_but_not_a_customer(
        api, admin_headers, admin_user_headers, make_customer):
    assert (await api.get("/admin/inventory/low-stock", headers=admin_headers)).status_code == 200
    assert (await api.get("/admin/inventory/low-stock", headers=admin_user_headers)).status_code == 200
    customer = await make_customer()
    r = await api.get("/admin/inventory/low-stock", headers=customer.headers)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


async def test_refresh_rotates_and_each_refresh_token_works_once(api, make_customer):
    customer = await make_customer()
    r = await api.post("/auth/refresh", json={"refresh_token": customer.refresh_token})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != customer.refresh_token and second["token_type"] == "bearer"
    assert (await api.get("/account", headers={"Authorization": f"Bearer {second['access_token']}"})).status_code == 200
    r = await api.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 200
    # the one it replaced no longer works
    r = await api.post("/auth/refresh", json={"refresh_token": customer.refresh_token})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_reusing_a_refresh_token_revokes_its_whole_family(api, make_customer, db):
    customer = await make_customer()
    stolen = customer.refresh_token
    legit = (await api.post("/auth/refresh", json={"refresh_token": stolen})).json()["refresh_token"]
    # the thief (or the victim) presents the already-used token: reuse
    r = await api.post("/auth/refresh", json={"refresh_token": stolen})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    # ...and the newest token of the family is dead too
    r = await api.post("/auth/refresh", json={"refresh_token": legit})
    assert r.status_code == 401
    live = await db.fetchval("select count(*) from refresh_tokens where user_id = $1 and revoked_at is null",
                             uuid.UUID(customer.user_id))
    assert live == 0
    # another sign-in is another family, unaffected
    fresh = await sign_in(str(api.base_url), customer.email, customer.password)
    assert (await api.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})).status_code == 200


async def test_refresh_tokens_are_stored_only_as_hashes(make_customer, db):
    customer = await make_customer()
    rows = await db.fetch("select token_hash from refresh_tokens where user_id = $1", uuid.UUID(customer.user_id))
    assert rows and all(customer.refresh_token.encode() not in bytes(r["token_hash"]) for r in rows)
    dump = await db.fetchval("select string_agg(t::text, ' ') from refresh_tokens t where user_id = $1",
                             uuid.UUID(customer.user_id))
    assert customer.refresh_token not in dump


async def test_sign_out_revokes_the_session(api, make_customer):
    customer = await make_customer()
    other = await sign_in(str(api.base_url), customer.email, customer.password)  # a second device
    r = await api.post("/auth/sign-out", json={"refresh_token": customer.refresh_token})
    assert r.status_code == 204
    assert (await api.post("/auth/refresh", json={"refresh_token": customer.refresh_token})).status_code == 401
    # the other device's session is its own family and survives
    assert (await api.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 200


async def test_page_sign_in_sets_httponly_lax_cookies_that_authenticate_refresh_and_sign_out(stack, make_customer):
    customer = await make_customer()
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=30) as browser:
        r = await browser.post("/auth/sign-in", json={"email": customer.email, "password": customer.password})
        assert r.status_code == 200, r.text
        assert r.json()["user"]["email"] == customer.email and "access_token" not in r.json()
        set_cookies = r.headers.get_list("set-cookie")
        access = next(c for c in set_cookies if c.startswith("surge_access="))
        refresh = next(c for c in set_cookies if c.startswith("surge_refresh="))
        for cookie in (access, refresh):
            assert "HttpOnly" in cookie and re.search(r"SameSite=lax", cookie, re.I)
        assert "Path=/auth" in refresh
        assert (await browser.get("/account")).status_code == 200  # the cookie authenticates
        old_refresh = browser.cookies.get("surge_refresh")
        r = await browser.post("/auth/refresh")
        assert r.status_code == 200 and browser.cookies.get("surge_refresh") != old_refresh
        assert (await browser.post("/auth/sign-out")).status_code == 204
        assert (await browser.get("/account")).status_code == 401  # cookies cleared
        refreshed = await browser.post("/auth/refresh", cookies={"surge_refresh": r.json()["refresh_token"]})
        assert refreshed.status_code == 401  # and the session revoked


async def test_password_change_needs_the_current_password_and_signs_out_other_sessions(api, make_customer):
    customer = await make_customer()
    r = await api.post("/auth/password", headers=customer.headers,
                       json={"current_password": "wrong-password", "new_password": "brand-new-password"})
    assert r.status_code == 401
    r = await api.post("/auth/password", headers=customer.headers,
                       json={"current_password": customer.password, "new_password": "brand-new-password"})
    assert r.status_code == 200 and r.json()["access_token"]
    assert (await api.post("/auth/refresh", json={"refresh_token": customer.refresh_token})).status_code == 401
    old = await api.post("/auth/token", data={"username": customer.email, "password": customer.password})
    assert old.status_code == 401
    await sign_in(str(api.base_url), customer.email, "brand-new-password")


async def reset_token_from_mailbox(db, email: str) -> str:
    """The reset mail is delivered just after the 202 (so the answer's timing says nothing): wait for it."""
    from tests.conftest import async_wait_for

    async def body():
        return await db.fetchval("select body from notifications where kind = 'password_reset' and to_email = $1 "
                                 "and sent_at is not null order by id desc limit 1", email)

    text = await async_wait_for(body, timeout_s=10, what="the reset email in the mailbox")
    return re.search(r"token=([A-Za-z0-9_-]+)", text).group(1)


async def test_password_reset_through_the_mailbox_row(stack, api, make_customer, db, admin_headers):
    customer = await make_customer()
    r = await api.post("/auth/password-reset", json={"email": customer.email})
    assert r.status_code == 202
    token = await reset_token_from_mailbox(db, customer.email)
    row = await db.fetchrow("select event_id, subject, sent_at from notifications where kind = 'password_reset' "
                            "and to_email = $1", customer.email)
    # delivered the way order mail is: marked sent, and an .eml in the data dir's mailbox
    assert row["sent_at"] is not None
    assert token in (stack.data_dir / "mailbox" / f"{row['event_id']}.eml").read_text()
    # an admin listing the mailbox sees that it went, never the code
    listed = (await api.get("/admin/notifications", headers=admin_headers)).json()["items"]
    mine = [n for n in listed if n["kind"] == "password_reset" and n["to_email"] == customer.email]
    assert mine and token not in mine[0]["body"]
    assert await db.fetchval("select count(*) from password_reset_tokens where token_hash = $1",
                             hashlib.sha256(token.encode()).digest()) == 1
    r = await api.post("/auth/password-reset/confirm", json={"token": token, "new_password": "reset-password-1"})
    assert r.status_code == 204
    await sign_in(str(api.base_url), customer.email, "reset-password-1")
    # the session from before the reset is gone, and the token works once
    assert (await api.post("/auth/refresh", json={"refresh_token": customer.refresh_token})).status_code == 401
    r = await api.post("/auth/password-reset/confirm", json={"token": token, "new_password": "reset-password-2"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_password_reset_answers_the_same_for_an_unknown_email_and_sends_nothing(api, db):
    email = unique_email()
    r = await api.post("/auth/password-reset", json={"email": email})
    assert r.status_code == 202 and "exists" in r.json()["detail"]
    # nothing is sent: a known account's request made after this one is mailed, this one never is
    known = unique_email()
    assert (await api.post("/auth/register", json={"email": known, "password": "long-enough-1"})).status_code == 201
    assert (await api.post("/auth/password-reset", json={"email": known})).status_code == 202
    await reset_token_from_mailbox(db, known)
    assert await db.fetchval("select count(*) from notifications where to_email = $1", email) == 0


async def test_brute_force_sign_in_is_stopped_with_429_and_retry_after(api, make_customer):
    customer = await make_customer()
    codes = []
    for _ in range(6):
        r = await api.post("/auth/token", data={"username": customer.email, "password": "guess-guess"})
        codes.append(r.status_code)
    assert codes[:5] == [401] * 5 and codes[5] == 429
    assert r.headers["content-type"] == "application/problem+json" and r.json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # while locked, even the right password waits (the attacker learns nothing by trying it)
    r = await api.post("/auth/token", data={"username": customer.email, "password": customer.password})
    assert r.status_code == 429
    # other accounts are unaffected
    other = await make_customer()
    assert (await api.post("/auth/token", data={"username": other.email, "password": other.password})).status_code == 200


async def test_an_unknown_email_is_locked_out_just_like_a_known_one(api):
    email = unique_email()
    codes = [(await api.post("/auth/token", data={"username": email, "password": "guess"})).status_code
             for _ in range(6)]
    assert codes == [401] * 5 + [429]


async def test_a_deactivated_user_is_refused_even_with_an_unexpired_token(api, make_customer, admin_user_headers):
    from tests.conftest import async_wait_for

    customer = await make_customer()
    assert (await api.get("/account", headers=customer.headers)).status_code == 200
    r = await api.post(f"/admin/users/{customer.user_id}/deactivate", headers=admin_user_headers)
    assert r.status_code == 200 and r.json()["status"] == "deactivated"

    async def refused():
        r = await api.get("/account", headers=customer.headers)
        return r.status_code == 403 and r.json()["code"] == "account_deactivated"

    await async_wait_for(refused, timeout_s=10, what="the access token to be refused")  # cache window: 5 s
    assert (await api.post("/auth/refresh", json={"refresh_token": customer.refresh_token})).status_code == 401
    r = await api.post("/auth/token", data={"username": customer.email, "password": customer.password})
    assert r.status_code == 403 and r.json()["code"] == "account_deactivated"
    # a wrong password still says only "incorrect", so deactivation is not an oracle
    r = await api.post("/auth/token", data={"username": customer.email, "password": "wrong-wrong"})
    assert r.status_code == 401


async def test_a_hash_with_old_parameters_is_upgraded_at_the_next_sign_in(api, make_customer, db):
    from argon2 import extract_parameters

    from storage.passwords import PasswordHasher

    customer = await make_customer()
    old = PasswordHasher(time_cost=3).hash_sync(customer.password)  # not what the stack uses (t=2)
    await db.execute("update users set password_hash = $2 where id = $1", uuid.UUID(customer.user_id), old)
    await sign_in(str(api.base_url), customer.email, customer.password)
    stored = await db.fetchval("select password_hash from users where id = $1", uuid.UUID(customer.user_id))
    assert stored != old and extract_parameters(stored).time_cost == 2
    await sign_in(str(api.base_url), customer.email, customer.password)  # and the new hash verifies


async def test_demo_accounts_seed_is_idempotent(db):
    from storage.seed import seed_demo, seed_demo_accounts

    assert await seed_demo_accounts(db) == 0
    assert await seed_demo(db) is False
    count = await db.fetchval("select count(*) from users where lower(email) in ($1, $2)", DEMO_ADMIN[0],
                              DEMO_CUSTOMER[0])
    assert count == 2


async def test_two_concurrent_refreshes_with_one_token_cannot_both_rotate(stack, make_customer):
    """The token row is locked while it rotates: one caller wins, the other is a reuse, and the
    reuse revokes the family, the winner's new token included."""
    import asyncio

    customer = await make_customer()
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=30) as api:
        results = await asyncio.gather(*(api.post("/auth/refresh", json={"refresh_token": customer.refresh_token})
                                          for _ in range(2)))
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 401]
        winner = next(r for r in results if r.status_code == 200).json()
        assert (await api.post("/auth/refresh", json={"refresh_token": winner["refresh_token"]})).status_code == 401


async def test_concurrent_registrations_of_one_email_create_one_account(stack, db):
    import asyncio

    email = unique_email()
    async with httpx.AsyncClient(base_url=stack.urls.api, timeout=30) as api:
        results = await asyncio.gather(*(api.post("/auth/register", json={"email": email, "password": f"password-{i}"})
                                          for i in range(4)))
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    assert await db.fetchval("select count(*) from users where lower(email) = $1", email) == 1


async def test_control_characters_are_refused_not_a_server_error(api, admin_user_headers):
    """PostgreSQL refuses NUL in text: free-text inputs must answer 4xx, never 500."""
    r = await api.post("/auth/register", json={"email": "nul\u0000@example.test", "password": "long-enough-1"})
    assert r.status_code == 422
    r = await api.post("/auth/register", json={"email": unique_email(), "password": "long-enough-1", "name": "a\u0000"})
    assert r.status_code == 422
    r = await api.post("/auth/token", data={"username": "nul\u0000@example.test", "password": "whatever"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    r = await api.post("/auth/password-reset", json={"email": "nul\u0000@example.test"})
    assert r.status_code == 422
    assert (await api.get("/admin/users", params={"q": "a\u0000"}, headers=admin_user_headers)).status_code == 422
    r = await api.get("/admin/audit-log", params={"before_id": 2**70}, headers=admin_user_headers)
    assert r.status_code == 422
