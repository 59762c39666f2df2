"""Process-wide runtime tuning that every Surge server process applies at start."""
from __future__ import annotations

import gc

from storage.logs import configure_logging


def configure_process(log_level: str, component: str, gc_gen0_threshold: int) -> None:
    """What every Surge server process (API replica, owner actor, hub) does first: JSON logs named
    for the component, and the GC tuned for a server."""
    configure_logging(log_level, component=component)
    tune_gc(gc_gen0_threshold)


def tune_gc(gen0_threshold: int) -> None:
    """Collect the young generation after `gen0_threshold` net new container objects instead of
    Python's 700 (0 keeps the default; the older generations keep theirs).

    Why: a server's requests allocate and free thousands of objects, and the 700 is crossed by what
    a request leaves behind for a while (buffers, futures, cached entries). On the flash sale a
    one-off `gc.callbacks` probe (not in the tree) counted ~900 young collections in 16 s per API
    replica, ~0.4 s of GC; at 10,000 almost none. End to end it saves ~3% of CPU per purchase
    (`python -m loadtests.flash_pairs --b-env SURGE_GC_GEN0_THRESHOLD=0`; README, "The flash sale").
    Cycles are still collected, a little later."""
    if gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)
