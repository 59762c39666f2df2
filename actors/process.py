"""What every owner actor's process does first, in one place."""
from __future__ import annotations

from actors.directory import OwnerConfig
from storage.logs import configure_logging
from storage.runtime import tune_gc


def configure_owner_process(config: OwnerConfig, component: str) -> None:
    """JSON logs named for the component, and the GC tuned for a server (`storage.runtime.tune_gc`)."""
    configure_logging(config.log_level, component=component)
    tune_gc(config.settings.gc_gen0_threshold)
