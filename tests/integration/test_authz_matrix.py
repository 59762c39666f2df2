"""The authorisation matrix: every route family × anonymous, customer A, customer B and an admin.

Table-driven so other route families join as rows: add the resources your rows need to
`matrix` (a placeholder name → value, e.g. `b_cart`), then rows to ROUTES with the status each
actor must get. Actors run in the order of ACTORS, the owner last, so a destructive row (DELETE)
proves that everyone else was refused before the owner succeeds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, DEMO_ADMIN, register_customer, sign_in

pytestmark = pytest.mark.integration

ACTORS = ("anonymous", "customer_b", "admin", "customer_a")  # customer A owns the resources
ADDRESS = {"name": "A Owner", "line1": "1 A Street", "city": "Aville", "postal": "11111", "country": "US"}


@dataclass(frozen=True)
class Case:
    family: str
    method: str
    path: str  # placeholders from the `matrix` fixture: {a_user}, {a_address}, ...
    expect: dict[str, int]  # actor → status
    json: dict | None = None
    params: dict = field(default_factory=dict)


def everyone(status: int, **overrides: int) -> dict[str, int]:
    return {**{actor: status for actor in ACTORS}, **overrides}


SIGNED_IN = dict(anonymous=401)
ADMIN_ONLY = dict(anonymous=401, customer_a=403, customer_b=403)
OWNER_ONLY = dict(anonymous=401, customer_b=404, admin=404)  # someone else's id answers 404, as if it did not exist

ROUTES: list[Case] = [
    # account (self)
    Case("account", "GET", "/account", everyone(200, **SIGNED_IN)),
    Case("account", "PATCH", "/account", everyone(200, **SIGNED_IN), json={"name": "Renamed"}),
    Case("account", "GET", "/account/addresses", everyone(200, **SIGNED_IN)),
    Case("account", "POST", "/account/addresses", everyone(201, **SIGNED_IN), json=ADDRESS),
    # addresses (owned by A)
    Case("addresses", "GET", "/account/addresses/{a_address}", everyone(200, **OWNER_ONLY)),
    Case("addresses", "PATCH", "/account/addresses/{a_address}", everyone(200, **OWNER_ONLY), json={"city": "Btown"}),
    Case("addresses", "DELETE", "/account/addresses/{a_address_to_delete}", everyone(204, **OWNER_ONLY)),
    # auth
    Case("auth", "POST", "/auth/password", everyone(422, **SIGNED_IN), json={"current_password": "x"}),
    # admin users
    Case("admin-users", "GET", "/admin/users", everyone(200, **ADMIN_ONLY)),
    Case("admin-users", "GET", "/admin/users/{a_user}", everyone(200, **ADMIN_ONLY)),
    Case("admin-users", "GET", "/admin/users/{a_user}/orders", everyone(200, **ADMIN_ONLY)),
    Case("admin-users", "GET", "/admin/users/{a_user}/carts", everyone(200, **ADMIN_ONLY)),
    Case("admin-users", "PUT", "/admin/users/{a_user}/role", everyone(200, **ADMIN_ONLY), json={"role": "customer"}),
    Case("admin-users", "POST", "/admin/users/{victim}/deactivate", everyone(200, **ADMIN_ONLY)),
    Case("admin-users", "POST", "/admin/users/{victim}/reactivate", everyone(200, **ADMIN_ONLY)),
    Case("admin-users", "GET", "/admin/audit-log", everyone(200, **ADMIN_ONLY)),
    # admin inventory
    Case("admin-inventory", "GET", "/admin/inventory/low-stock", everyone(200, **ADMIN_ONLY)),
]


@pytest.fixture(scope="module")
async def matrix(stack) -> dict:
    """Actors' headers and the resources the rows name."""
    base = stack.urls.api
    a, b, victim = [await register_customer(base) for _ in range(3)]
    admin = await sign_in(base, *DEMO_ADMIN)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        addresses = [(await client.post("/account/addresses", json=ADDRESS, headers=a.headers)).json()["id"]
                     for _ in range(2)]
    return {
        "headers": {"anonymous": {}, "customer_a": a.headers, "customer_b": b.headers,
                    "admin": {"Authorization": f"Bearer {admin['access_token']}"}},
        "a_user": a.user_id, "b_user": b.user_id, "victim": victim.user_id,
        "a_address": addresses[0], "a_address_to_delete": addresses[1],
    }


def test_every_actor_has_an_expectation_in_every_row():
    for case in ROUTES:
        assert set(case.expect) == set(ACTORS), case


@pytest.mark.parametrize("case", ROUTES, ids=lambda c: f"{c.family}:{c.method} {c.path}")
async def test_authorisation_matrix(api, matrix, case: Case):
    path = case.path.format(**{k: v for k, v in matrix.items() if k != "headers"})
    wrong = []
    for actor in ACTORS:
        r = await api.request(case.method, path, json=case.json, params=case.params, headers=matrix["headers"][actor])
        if r.status_code != case.expect[actor]:
            wrong.append(f"{actor}: {r.status_code} (expected {case.expect[actor]}) {r.text[:200]}")
        elif r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json"
    assert not wrong, "\n".join(wrong)


async def test_the_service_token_is_an_admin_but_not_a_user(api, matrix):
    service = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (await api.get(f"/admin/users/{matrix['a_user']}", headers=service)).status_code == 200
    assert (await api.get("/account", headers=service)).status_code == 403
