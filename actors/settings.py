"""Actor settings: shard counts and the group-commit loop's limits. Read at composition roots only."""
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ActorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SURGE_", extra="ignore", populate_by_name=True)

    namespace: str = "surge"
    inventory_shards: int = Field(default=2, ge=1, le=1024)
    cart_shards: int = Field(default=2, ge=1, le=1024)
    order_pipelines: int = Field(default=2, ge=1, le=1024)
    # A flush takes whatever arrived while the previous commit ran, up to this many commands.
    flush_max_batch: int = Field(default=2000, ge=1)
    # Ray async actors run up to 1000 calls at once by default; say it on purpose.
    actor_max_concurrency: int = Field(default=1000, ge=1)
    # CPU reserved per owner actor; 0 lets many owners share a small machine.
    actor_num_cpus: float = Field(default=0.0, ge=0)
    # Stream consumers that nobody waits on (analytics, cache invalidation) pause this long after a
    # read that did not fill a batch, so a busy stream is read in batches, not one wake per event
    # (a flash sale commits ~100 times a second; each wake costs a read and an ack round trip).
    consumer_linger_s: float = Field(default=0.1, ge=0, le=5)
    # On a busy stream (relay rounds less than `event_relay.BUSY_GAP_S`, 20 ms, apart), the relay,
    # woken by a commit, waits this long before reading the outbox, so one round (a read, a stream
    # pipeline, an update) carries the commits of that window; a quiet stream is read at once; 0:
    # never wait. In a flash sale 5 ms cost ~6-8% less CPU per purchase than 0
    # (loadtests/flash_pairs.py, README "The flash sale").
    relay_linger_s: float = Field(default=0.005, ge=0, le=1)
    # The outbox keeps relayed rows this long (an audit trail of what was published), then the relay
    # deletes them, checking every `outbox_prune_every_s`; 0 keeps them forever.
    outbox_retention_s: float = Field(default=7 * 86400, ge=0)
    outbox_prune_every_s: float = Field(default=300.0, gt=0)
    # An inventory shard forgets settled reservations this long after they settled (released,
    # expired, committed without a customer: those a restart would not load either), so its memory
    # and GC work stay bounded in a store that runs for weeks; a retry of a forgotten id is a new
    # reservation, as after a restart. 0: never forget.
    settled_reservations_keep_s: float = Field(default=3600.0, ge=0)
    # Young-generation GC threshold of the API replicas and owner actors (storage/runtime.py); 0: Python's 700.
    gc_gen0_threshold: int = Field(default=10_000, ge=0)
    # checkout: how long an order waits for its payment before it is cancelled and its stock released
    checkout_ttl_s: float = Field(default=900.0, gt=0)
    # flash-sale holds taken at add-to-cart
    cart_hold_ttl_s: float = Field(default=600.0, gt=0)
    # the reconciler re-fetches PaymentIntents of orders pending longer than this
    reconcile_after_s: float = Field(default=15.0, gt=0)
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    # Notifications: an SMTP server (smtp://…, smtps://…, ?starttls=true; unset = the local mailbox
    # only) and the directory of the mailbox's .eml files (bring-up: <data dir>/mailbox; unset = table only).
    smtp_url: str | None = None
    mailbox_dir: str | None = None
