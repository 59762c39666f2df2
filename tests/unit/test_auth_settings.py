"""Account settings fail fast: placeholder secrets and weak Argon2 parameters are refused."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from serve_app.settings import DEFAULT_RATE_LIMITS, ServeSettings
from storage.crypto import generate_key
from storage.settings import AuthSettings

pytestmark = pytest.mark.unit

GOOD_SECRET = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7"


@pytest.mark.parametrize("secret", ["changeme" * 5, "x" * 40, "change-me-please-change-me-please-!!"])
def test_placeholder_or_trivial_jwt_secrets_are_refused(secret):
    with pytest.raises(ValidationError):
        AuthSettings(jwt_secret=secret)


def test_a_short_jwt_secret_is_refused():
    with pytest.raises(ValidationError):
        AuthSettings(jwt_secret="short-but-random-9f8e7d")


def test_missing_secrets_are_named_when_required():
    with pytest.raises(ValueError, match="SURGE_JWT_SECRET.*SURGE_PII_KEYS"):
        AuthSettings(jwt_secret=None, pii_keys=None).require_secrets()
    AuthSettings(jwt_secret=GOOD_SECRET, pii_keys=generate_key()).require_secrets()


@pytest.mark.parametrize("keys", ["k1:" + "A" * 43, "k1:tooshort", "no-kid-given"])
def test_placeholder_or_malformed_pii_keys_are_refused(keys):
    with pytest.raises(ValidationError):
        AuthSettings(pii_keys=keys)


@pytest.mark.parametrize("field,value", [("argon2_memory_kib", 16_384), ("argon2_time_cost", 1),
                                         ("argon2_parallelism", 0)])
def test_argon2_parameters_below_the_owasp_minimum_are_refused(field, value):
    with pytest.raises(ValidationError):
        AuthSettings(**{field: value})


def test_cors_origins_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("SURGE_CORS_ORIGINS", "https://shop.example, https://admin.example")
    assert ServeSettings().cors_origins == ["https://shop.example", "https://admin.example"]


def test_rate_limit_overrides_merge_with_the_defaults_and_bad_ones_fail(monkeypatch):
    monkeypatch.setenv("SURGE_RATE_LIMITS", '{"search": "5/second"}')
    limits = ServeSettings().rate_limits
    assert limits["search"] == "5/second" and limits["signin_account"] == DEFAULT_RATE_LIMITS["signin_account"]
    with pytest.raises(ValidationError):
        ServeSettings(rate_limits={"search": "lots"})
