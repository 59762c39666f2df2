"""Hub settings read from the environment at the hub's composition root (`server.main`). The secrets
that verify tokens are the accounts' own (`storage.settings.AuthSettings`); `surge up` hands them to
the hub process in its environment, never on its command line (where `ps` would show them)."""
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SURGE_", extra="ignore", populate_by_name=True)

    # the API's service token: an admin on the hub too (ops dashboards, tests)
    admin_token: str | None = Field(default=None, min_length=24)
    # young-generation GC threshold (storage/runtime.py); 0: Python's 700
    gc_gen0_threshold: int = Field(default=10_000, ge=0)
    # every this many seconds the hub freezes what survived the young collections (realtime/heap.py),
    # so the GC's full passes no longer scan every socket's objects; 0: never (CPython's own policy)
    hub_gc_freeze_s: float = Field(default=1.0, ge=0)
    # and every this many seconds it unfreezes and collects in full, for any cyclic garbage made of
    # frozen objects (one full pause); 0: never
    hub_gc_reclaim_s: float = Field(default=900.0, ge=0)
