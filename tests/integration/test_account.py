"""Profile and addresses: owner-scoped, personal fields encrypted in the database, decrypted
through the API, and re-encryptable under a new key."""
from __future__ import annotations

import uuid

import pytest

from storage.crypto import PiiCipher, generate_key, reencrypt_all

pytestmark = pytest.mark.integration

ADDRESS = {"label": "home", "name": "Grace Hopper", "line1": "1 Compiler Way", "line2": "Apt 7", "city": "Arlington",
           "region": "VA", "postal": "22201", "country": "us"}


async def test_profile_update_changes_name_and_phone_and_nothing_else(api, make_customer):
    customer = await make_customer()
    r = await api.patch("/account", headers=customer.headers, json={"name": "New Name", "phone": "+1 555 0100"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "New Name" and r.json()["phone"] == "+1 555 0100"
    for smuggled in ({"role": "admin"}, {"status": "active"}, {"email": "x@example.test"}, {"id": str(uuid.uuid4())}):
        r = await api.patch("/account", headers=customer.headers, json=smuggled)
        assert r.status_code == 422, smuggled
    r = await api.get("/account", headers=customer.headers)
    assert r.json()["role"] == "customer" and r.json()["email"] == customer.email
    r = await api.patch("/account", headers=customer.headers, json={"phone": None})
    assert r.status_code == 200 and r.json()["phone"] is None and r.json()["name"] == "New Name"


async def test_the_phone_is_encrypted_in_the_database(api, make_customer, db):
    customer = await make_customer()
    await api.patch("/account", headers=customer.headers, json={"phone": "+44 20 7946 0991"})
    raw = await db.fetchval("select phone_enc from users where id = $1", uuid.UUID(customer.user_id))
    assert raw.startswith("v1.") and "7946" not in raw and "0991" not in raw
    assert (await api.get("/account", headers=customer.headers)).json()["phone"] == "+44 20 7946 0991"


async def test_addresses_crud_for_their_owner(api, make_customer):
    customer = await make_customer()
    r = await api.post("/account/addresses", headers=customer.headers, json={**ADDRESS, "is_default": True})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["line1"] == "1 Compiler Way" and first["country"] == "US" and first["is_default"]
    second = (await api.post("/account/addresses", headers=customer.headers,
                             json={**ADDRESS, "line1": "2 Other St", "is_default": True})).json()
    listed = (await api.get("/account/addresses", headers=customer.headers)).json()
    assert [a["id"] for a in listed] == [first["id"], second["id"]]
    assert [a["is_default"] for a in listed] == [False, True]  # one default at a time
    r = await api.patch(f"/account/addresses/{first['id']}", headers=customer.headers,
                        json={"city": "Boston", "line2": None})
    assert r.status_code == 200 and r.json()["city"] == "Boston" and r.json()["line2"] is None
    assert r.json()["line1"] == "1 Compiler Way"
    assert (await api.get(f"/account/addresses/{first['id']}", headers=customer.headers)).json()["city"] == "Boston"
    assert (await api.delete(f"/account/addresses/{first['id']}", headers=customer.headers)).status_code == 204
    assert (await api.get(f"/account/addresses/{first['id']}", headers=customer.headers)).status_code == 404
    assert [a["id"] for a in (await api.get("/account/addresses", headers=customer.headers)).json()] == [second["id"]]


async def test_address_bodies_cannot_name_an_owner(api, make_customer):
    customer = await make_customer()
    other = await make_customer()
    r = await api.post("/account/addresses", headers=customer.headers, json={**ADDRESS, "user_id": other.user_id})
    assert r.status_code == 422


async def test_another_users_address_answers_404_like_a_missing_one(api, make_customer):
    owner, intruder = await make_customer(), await make_customer()
    address = (await api.post("/account/addresses", headers=owner.headers, json=ADDRESS)).json()
    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"city": "Hacked"}}), ("DELETE", {})):
        r = await api.request(method, f"/account/addresses/{address['id']}", headers=intruder.headers, **kwargs)
        assert r.status_code == 404 and r.json()["code"] == "not_found", method
        missing = await api.request(method, f"/account/addresses/{uuid.uuid4()}", headers=intruder.headers, **kwargs)
        assert missing.status_code == 404 and missing.json()["detail"] == r.json()["detail"]
    assert (await api.get("/account/addresses", headers=intruder.headers)).json() == []
    assert (await api.get(f"/account/addresses/{address['id']}", headers=owner.headers)).json()["city"] == "Arlington"


async def test_address_fields_are_encrypted_in_the_database_and_decrypted_through_the_api(api, make_customer, db):
    customer = await make_customer()
    address = (await api.post("/account/addresses", headers=customer.headers, json=ADDRESS)).json()
    row = await db.fetchrow("select * from addresses where id = $1", uuid.UUID(address["id"]))
    raw = " ".join(str(v) for v in dict(row).values())
    for plaintext in ("Grace Hopper", "Compiler", "Apt 7", "Arlington", "22201"):
        assert plaintext not in raw
    assert all(row[c].startswith("v1.") for c in ("name_enc", "line1_enc", "line2_enc", "city_enc", "region_enc",
                                                    "postal_enc"))
    got = (await api.get(f"/account/addresses/{address['id']}", headers=customer.headers)).json()
    assert {k: got[k] for k in ADDRESS} == {**ADDRESS, "country": "US"}


async def test_key_rotation_re_encrypts_every_row_under_the_newest_key_and_back(stack, api, make_customer, db):
    """Rotates the shared stack's PII forward to a new key and back to the key the API holds."""
    customer = await make_customer()
    address = (await api.post("/account/addresses", headers=customer.headers, json=ADDRESS)).json()
    await api.patch("/account", headers=customer.headers, json={"phone": "+1 555 0199"})
    current = stack.auth_settings().pii_keys
    current_kid = PiiCipher.from_spec(current).primary_kid
    newest = generate_key("rot" + uuid.uuid4().hex[:6])
    forward = PiiCipher.from_spec(f"{newest},{current}")
    try:
        assert await reencrypt_all(db, forward) >= 2
        row = await db.fetchrow("select line1_enc from addresses where id = $1", uuid.UUID(address["id"]))
        phone = await db.fetchval("select phone_enc from users where id = $1", uuid.UUID(customer.user_id))
        assert row["line1_enc"].startswith(f"v1.{forward.primary_kid}.") and phone.startswith(f"v1.{forward.primary_kid}.")
        assert forward.decrypt(row["line1_enc"], f"addresses.line1:{address['id']}") == "1 Compiler Way"
        stale = await db.fetchval("select count(*) from addresses where left(line1_enc, $1) <> $2",
                                  len(forward.primary_kid) + 4, f"v1.{forward.primary_kid}.")
        assert stale == 0
        assert await reencrypt_all(db, forward) == 0  # nothing left under an old key
    finally:
        back = PiiCipher.from_spec(f"{current},{newest}")
        await reencrypt_all(db, back)
    phone = await db.fetchval("select phone_enc from users where id = $1", uuid.UUID(customer.user_id))
    assert phone.startswith(f"v1.{current_kid}.")
    got = (await api.get(f"/account/addresses/{address['id']}", headers=customer.headers)).json()
    assert got["line1"] == "1 Compiler Way"
    assert (await api.get("/account", headers=customer.headers)).json()["phone"] == "+1 555 0199"


def test_surge_pii_rotate_re_encrypts_under_the_newest_key(stack):
    """The CLI, pointed at the stack's database with keys from SURGE_PII_KEYS: forward to a new key,
    then back to the stack's own (so the running API can still read every row)."""
    import asyncio
    import os
    import subprocess
    import sys
    from pathlib import Path

    from storage.pool import create_pool

    surge = str(Path(sys.executable).parent / "surge")
    current = stack.auth_settings().pii_keys
    newest = generate_key("cli" + uuid.uuid4().hex[:6])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SURGE_", "RAY_")) and k != "DATABASE_URL"}
    env.update(SURGE_DATA_DIR=str(stack.data_dir), DATABASE_URL=stack.urls.database)

    async def stale_under(kid: str) -> int:
        pool = await create_pool(stack.urls.database, max_size=1)
        try:
            return await pool.fetchval("select count(*) from addresses where line1_enc not like $1", f"v1.{kid}.%")
        finally:
            await pool.close()

    # at least one address to rotate, whatever ran before
    import httpx

    email, password = f"r-{uuid.uuid4().hex[:10]}@example.test", "rotate-password-1"
    with httpx.Client(base_url=stack.urls.api, timeout=30) as api:
        assert api.post("/auth/register", json={"email": email, "password": password}).status_code == 201
        token = api.post("/auth/token", data={"username": email, "password": password}).json()["access_token"]
        assert api.post("/account/addresses", json=ADDRESS,
                        headers={"Authorization": f"Bearer {token}"}).status_code == 201

    forward = subprocess.run([surge, "pii-rotate"], env={**env, "SURGE_PII_KEYS": f"{newest},{current}"},
                             capture_output=True, text=True, timeout=120)
    try:
        assert forward.returncode == 0, forward.stderr
        assert "re-encrypted under key" in forward.stdout and not forward.stdout.startswith("0 ")
        assert asyncio.run(stale_under(newest.split(":")[0])) == 0
    finally:
        back = subprocess.run([surge, "pii-rotate"], env={**env, "SURGE_PII_KEYS": f"{current},{newest}"},
                              capture_output=True, text=True, timeout=120)
    assert back.returncode == 0, back.stderr
    assert asyncio.run(stale_under(PiiCipher.from_spec(current).primary_kid)) == 0
