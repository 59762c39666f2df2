"""Storage settings: where the system of record and the cache live.

Unset URLs mean "use the embedded server that `surge up` starts"; the composition root
(`cluster/`) fills them in and passes them down explicitly.
"""
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, description="postgresql://… ; unset = embedded")
    redis_url: str | None = Field(default=None, description="redis://… ; unset = embedded Valkey")
    elasticsearch_url: str | None = Field(default=None, description="http(s)://… ; unset = PostgreSQL search")
    db_pool_min: int = Field(default=1, alias="SURGE_DB_POOL_MIN")
    db_pool_max: int = Field(default=10, alias="SURGE_DB_POOL_MAX")
    db_connect_timeout_s: float = Field(default=5.0, alias="SURGE_DB_CONNECT_TIMEOUT_S")


# Values that mean "someone forgot to set this": refused at start-up (STYLE 18).
_PLACEHOLDERS = {"changeme", "change-me", "change_me", "secret", "password", "placeholder", "todo", "xxx", "test"}


def _is_placeholder(value: str) -> bool:
    v = value.strip().lower()
    return v in _PLACEHOLDERS or any(v.startswith(p) for p in ("changeme", "change-me", "change_me", "replace")) or len(set(v)) < 8


class AuthSettings(BaseSettings):
    """Secrets and parameters of accounts: JWT signing, PII encryption keys, Argon2id cost.

    `surge up` generates the secrets once and keeps them (0600) in the data dir, like the admin token;
    on a cluster they come from the environment. Placeholders are refused, not used."""

    model_config = SettingsConfigDict(env_prefix="SURGE_", extra="ignore", populate_by_name=True)

    jwt_secret: str | None = Field(default=None, min_length=32, description="HS256 signing key for access tokens")
    jwt_issuer: str = "surge"
    jwt_audience: str = "surge-api"
    access_ttl_s: int = Field(default=300, ge=30, le=3600)
    refresh_ttl_s: int = Field(default=14 * 86_400, ge=300)
    reset_ttl_s: int = Field(default=1800, ge=60, le=86_400)
    # "kid:base64key,kid:base64key" (32-byte AES keys), newest first: the first encrypts, all decrypt.
    pii_keys: str | None = None
    # Argon2id cost; never below OWASP's minimum (m=19 MiB, t=2, p=1).
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)

    @field_validator("jwt_secret", "pii_keys")
    @classmethod
    def _no_placeholders(cls, value: str | None) -> str | None:
        if value is not None and _is_placeholder(value):
            raise ValueError("is a placeholder; set a real secret (or unset it to let `surge up` generate one)")
        return value

    @field_validator("pii_keys")
    @classmethod
    def _well_formed_keys(cls, value: str | None) -> str | None:
        if value is not None:
            from storage.crypto import parse_keys

            parse_keys(value)  # raises ValueError saying what is wrong
        return value

    def require_secrets(self) -> None:
        """Fail fast where the secrets are needed (the API replicas, the CLI)."""
        missing = [name for name in ("jwt_secret", "pii_keys") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{', '.join('SURGE_' + m.upper() for m in missing)} not set")
