"""serve_app/auth.py: credentials → Principal for OptionalUser, CurrentUser and AdminUser, with a
fake account store (no servers)."""
from __future__ import annotations

import uuid
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from serve_app.auth import ACCESS_COOKIE
from serve_app.deps import AdminUser, CurrentUser, OptionalUser
from serve_app.errors import install_error_handlers
from serve_app.user_states import UserState
from storage.tokens import TokenConfig, encode_access

pytestmark = pytest.mark.unit

SECRET = "principal-test-secret-" + "s" * 30
TOKENS = TokenConfig(SECRET, SECRET, "surge", "surge-api")
SERVICE = "service-token-0123456789abcdef-xyz"
ALICE, BOB, ROOT = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


class FakeStates:
    def __init__(self):
        self.users = {ALICE: UserState("alice@example.test", "customer", "active"),
                      BOB: UserState("bob@example.test", "customer", "deactivated"),
                      ROOT: UserState("root@example.test", "admin", "active")}

    async def get(self, user_id, fresh=False):
        return self.users.get(user_id)


def app() -> FastAPI:
    api = FastAPI()
    api.state.ctx = SimpleNamespace(accounts=SimpleNamespace(tokens=TOKENS, states=FakeStates()),
                                    config=SimpleNamespace(serve=SimpleNamespace(admin_token=SERVICE)))
    install_error_handlers(api)

    def show(p):
        return None if p is None else {"user_id": str(p.user_id) if p.user_id else None, "role": p.role.value,
                                       "email": p.email}

    @api.get("/optional")
    async def optional(user: OptionalUser):
        return {"who": show(user)}

    @api.get("/current")
    async def current(user: CurrentUser):
        return {"who": show(user)}

    @api.get("/admin")
    async def admin(user: AdminUser):
        return {"who": show(user)}

    return api


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t") as c:
        yield c


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def jwt_for(user_id, role="customer") -> str:
    return encode_access(TOKENS, user_id, role)


async def test_anonymous(client):
    assert (await client.get("/optional")).json() == {"who": None}
    r = await client.get("/current")
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated" and r.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/admin")).status_code == 401


async def test_a_valid_bearer_token_is_the_user_with_the_role_from_the_account_not_the_token(client):
    forged_role = jwt_for(ALICE, role="admin")  # signed by us, but the account says customer
    r = await client.get("/current", headers=bearer(forged_role))
    assert r.json()["who"] == {"user_id": str(ALICE), "role": "customer", "email": "alice@example.test"}
    assert (await client.get("/admin", headers=bearer(forged_role))).status_code == 403
    assert (await client.get("/admin", headers=bearer(jwt_for(ROOT)))).json()["who"]["role"] == "admin"


async def test_an_invalid_bearer_token_is_refused_even_where_anonymous_is_allowed(client):
    for path in ("/optional", "/current", "/admin"):
        r = await client.get(path, headers=bearer("garbage"))
        assert r.status_code == 401 and r.json()["code"] == "invalid_token", path
    r = await client.get("/current", headers=bearer(jwt_for(uuid.uuid4())))  # a user that does not exist
    assert r.status_code == 401


async def test_a_session_cookie_authenticates_and_a_stale_one_is_anonymous_where_allowed(client):
    r = await client.get("/current", cookies={ACCESS_COOKIE: jwt_for(ALICE)})
    assert r.json()["who"]["user_id"] == str(ALICE)
    assert (await client.get("/optional", cookies={ACCESS_COOKIE: "stale"})).json() == {"who": None}
    assert (await client.get("/current", cookies={ACCESS_COOKIE: "stale"})).status_code == 401


async def test_the_bearer_header_wins_over_the_cookie(client):
    r = await client.get("/current", headers=bearer(jwt_for(ROOT)), cookies={ACCESS_COOKIE: jwt_for(ALICE)})
    assert r.json()["who"]["user_id"] == str(ROOT)


async def test_a_deactivated_user_is_refused_with_a_valid_token(client):
    r = await client.get("/current", headers=bearer(jwt_for(BOB)))
    assert r.status_code == 403 and r.json()["code"] == "account_deactivated"
    assert (await client.get("/optional", cookies={ACCESS_COOKIE: jwt_for(BOB)})).json() == {"who": None}


async def test_the_service_token_is_an_admin_without_a_user(client):
    assert (await client.get("/admin", headers=bearer(SERVICE))).json()["who"] == {
        "user_id": None, "role": "admin", "email": None}
    assert (await client.get("/current", headers=bearer(SERVICE))).status_code == 403
    assert (await client.get("/admin", headers=bearer(SERVICE[:-1] + "!"))).status_code == 401
