"""Access tokens (JWT) and opaque tokens (refresh, password reset): pure functions, settings passed in.

Both the API and the realtime hub verify access tokens with `verify_access`, so it lives here
(the hub may import only `storage/`). The algorithm is pinned by the verifier's configuration,
never taken from the token's header: `alg: none`, HS/RS confusion and the like are refused.
"""
from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


class InvalidToken(Exception):
    """The token is not one we issued, or no longer valid. The reason is for logs, not for clients."""


@dataclass(frozen=True)
class TokenConfig:
    """`signing_key` signs, `verification_key` verifies (the same secret for HS256; a PEM private and
    public key for RS256/EdDSA, so a verifier such as the hub can hold only the public one)."""

    signing_key: str | bytes | None
    verification_key: str | bytes
    issuer: str
    audience: str
    algorithm: str = "HS256"
    access_ttl_s: int = 300
    leeway_s: int = 5

    @classmethod
    def from_settings(cls, settings) -> "TokenConfig":
        """From `storage.settings.AuthSettings` (HS256 with its `jwt_secret`)."""
        if not settings.jwt_secret:
            raise ValueError("SURGE_JWT_SECRET not set")
        return cls(signing_key=settings.jwt_secret, verification_key=settings.jwt_secret, issuer=settings.jwt_issuer,
                   audience=settings.jwt_audience, access_ttl_s=settings.access_ttl_s)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    expires_at: int
    token_id: str


def encode_access(config: TokenConfig, user_id: uuid.UUID, role: str, *, now: float | None = None,
                  ttl_s: int | None = None) -> str:
    if config.signing_key is None:
        raise ValueError("this TokenConfig can only verify")
    issued = int(now if now is not None else time.time())
    payload = {
        "iss": config.issuer, "aud": config.audience, "sub": str(user_id), "role": role,
        "iat": issued, "nbf": issued, "exp": issued + (ttl_s if ttl_s is not None else config.access_ttl_s),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, config.signing_key, algorithm=config.algorithm)


def verify_access(config: TokenConfig, token: str) -> AccessClaims:
    """The claims of a valid access token; raises `InvalidToken` for anything else."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, config.verification_key, algorithms=[config.algorithm], audience=config.audience,
            issuer=config.issuer, leeway=config.leeway_s,
            options={"require": list(REQUIRED_CLAIMS), "verify_signature": True, "verify_exp": True,
                     "verify_aud": True, "verify_iss": True},
        )
        return AccessClaims(user_id=uuid.UUID(str(claims["sub"])), role=str(claims.get("role", "")),
                            expires_at=int(claims["exp"]), token_id=str(claims.get("jti", "")))
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(f"{type(exc).__name__}: {exc}") from None


def new_opaque_token() -> str:
    """A refresh or password-reset token: 256 random bits, URL-safe. Only its hash is stored."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    # 256-bit random tokens need no salt or slow hash: a SHA-256 lookup key is enough
    return hashlib.sha256(token.encode()).digest()
