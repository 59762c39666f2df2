"""Accounts over HTTP against the shared stack: registration, the OAuth2 password flow, page
sessions in cookies, refresh rotation with reuse detection, sign-out, passwords, rate limits."""
from __future__ import annotations

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
