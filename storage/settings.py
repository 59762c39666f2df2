"""Storage settings: where the system of record and the cache live.

Unset URLs mean "use the embedded server that `surge up` starts"; the composition root
(`cluster/`) fills them in and passes them down explicitly.
"""
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, description="postgresql://… ; unset = embedded")
    redis_url: str | None = Field(default=None, description="redis://… ; unset = embedded Valkey")
    elasticsearch_url: str | None = Field(default=None, description="http(s)://… ; unset = PostgreSQL search")
    db_pool_min: int = Field(default=1, alias="SURGE_DB_POOL_MIN")
    db_pool_max: int = Field(default=10, alias="SURGE_DB_POOL_MAX")
    db_connect_timeout_s: float = Field(default=5.0, alias="SURGE_DB_CONNECT_TIMEOUT_S")
