"""What every owner actor's process does first, in one place."""
from __future__ import annotations

from actors.directory import OwnerConfig
from storage.runtime import configure_process


def configure_owner_process(config: OwnerConfig, component: str) -> None:
    configure_process(config.log_level, component, config.settings.gc_gen0_threshold)
