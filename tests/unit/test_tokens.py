"""Access tokens resist the usual JWT attacks: the verifier's configuration decides the algorithm,
the key and the required claims, never the token."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from storage.tokens import InvalidToken, TokenConfig, encode_access, hash_token, new_opaque_token, verify_access

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret-" + "k" * 40
HS = TokenConfig(signing_key=SECRET, verification_key=SECRET, issuer="surge", audience="surge-api", access_ttl_s=300)
USER = uuid.UUID("11111111-2222-3333-4444-555555555555")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, payload: dict, sign) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {"iss": "surge", "aud": "surge-api", "sub": str(USER), "role": "admin", "iat": now, "exp": now + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict, key: str | bytes = SECRET) -> str:
    key = key.encode() if isinstance(key, str) else key
    return forge({"alg": "HS256", "typ": "JWT"}, payload, lambda m: hmac.new(key, m, hashlib.sha256).digest())


def test_a_token_we_issued_verifies_with_its_claims():
    token = encode_access(HS, USER, "customer")
    got = verify_access(HS, token)
    assert got.user_id == USER and got.role == "customer" and got.expires_at - time.time() <= 300


def test_our_forger_is_faithful_so_the_attacks_below_fail_for_their_reason():
    assert verify_access(HS, hs256(claims())).user_id == USER


def test_alg_none_is_refused():
    token = forge({"alg": "none", "typ": "JWT"}, claims(), lambda m: b"")
    with pytest.raises(InvalidToken):
        verify_access(HS, token)
    with pytest.raises(InvalidToken):
        verify_access(HS, token.rsplit(".", 1)[0] + ".")


def rsa_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def test_hs_rs_confusion_a_public_key_used_as_an_hmac_secret_is_refused():
    private, public = rsa_pair()
    rs = TokenConfig(signing_key=private, verification_key=public, issuer="surge", audience="surge-api",
                     algorithm="RS256")
    assert verify_access(rs, encode_access(rs, USER, "customer")).user_id == USER  # RS256 itself works
    # the attacker knows the public key and signs an HS256 token with it as the HMAC secret
    with pytest.raises(InvalidToken):
        verify_access(rs, hs256(claims(), key=public))


def test_a_token_signed_with_another_algorithm_and_key_is_refused_by_an_hs256_verifier():
    private, _ = rsa_pair()
    with pytest.raises(InvalidToken):
        verify_access(HS, jwt.encode(claims(), private, algorithm="RS256"))


def test_a_token_signed_with_another_secret_is_refused():
    with pytest.raises(InvalidToken):
        verify_access(HS, hs256(claims(), key="another-secret-" + "x" * 40))


def test_an_expired_token_is_refused():
    past = int(time.time()) - 3600
    with pytest.raises(InvalidToken):
        verify_access(HS, hs256(claims(iat=past, exp=past + 300)))
    with pytest.raises(InvalidToken):
        verify_access(HS, encode_access(HS, USER, "customer", now=time.time() - 600))


@pytest.mark.parametrize("claim,value", [("aud", "another-api"), ("iss", "evil"), ("aud", ["another-api"])])
def test_a_token_for_another_audience_or_from_another_issuer_is_refused(claim, value):
    with pytest.raises(InvalidToken):
        verify_access(HS, hs256(claims(**{claim: value})))


@pytest.mark.parametrize("missing", ["exp", "iss", "aud", "sub", "iat"])
def test_a_token_missing_a_required_claim_is_refused(missing):
    with pytest.raises(InvalidToken):
        verify_access(HS, hs256(claims(**{missing: None})))


def test_a_tampered_payload_is_refused():
    token = encode_access(HS, USER, "customer")
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["role"] = "admin"
    with pytest.raises(InvalidToken):
        verify_access(HS, f"{header}.{b64(json.dumps(body).encode())}.{signature}")


def test_a_tampered_signature_is_refused():
    token = encode_access(HS, USER, "customer")
    head, sig = token.rsplit(".", 1)
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(InvalidToken):
        verify_access(HS, f"{head}.{flipped}")


def test_a_subject_that_is_not_a_user_id_is_refused():
    with pytest.raises(InvalidToken):
        verify_access(HS, hs256(claims(sub="admin")))


def test_a_verify_only_config_cannot_sign():
    with pytest.raises(ValueError):
        encode_access(TokenConfig(None, SECRET, "surge", "surge-api"), USER, "customer")


def test_opaque_tokens_are_random_and_stored_only_as_a_digest():
    a, b = new_opaque_token(), new_opaque_token()
    assert a != b and len(a) >= 43
    assert hash_token(a) == hash_token(a) and hash_token(a) != hash_token(b)
    assert a.encode() not in hash_token(a) and len(hash_token(a)) == 32
