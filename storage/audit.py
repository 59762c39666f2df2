"""The inventory audit: every invariant of DESIGN.md checked from the database alone.

Independent of the owners' memory on purpose: it is what an operator runs after a crash to know
that nothing was oversold, lost or double-counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Breach:
    sku: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.sku}: {self.rule}: {self.detail}"


_AUDIT_SQL = """
with lines as (
    select sku,
           coalesce(sum(quantity) filter (where state = 'held'), 0)      as held,
           coalesce(sum(quantity) filter (where state = 'committed'), 0) as committed,
           count(*) filter (where state = 'held' and expires_at < now() - make_interval(secs => $1)) as stale_holds
    from reservation_lines group by sku
)
select s.sku, s.on_hand, s.reserved, s.sold, s.received,
       coalesce(l.held, 0) as held, coalesce(l.committed, 0) as committed, coalesce(l.stale_holds, 0) as stale_holds
from stock_levels s left join lines l using (sku)
where s.on_hand - s.reserved < 0
   or s.received <> s.sold + s.on_hand
   or s.reserved <> coalesce(l.held, 0)
   or s.sold <> coalesce(l.committed, 0)
   or coalesce(l.stale_holds, 0) > 0
order by s.sku
"""


async def audit_inventory(pool: asyncpg.Pool, stale_grace_s: float = 60.0) -> list[Breach]:
    """Breaches of: available ≥ 0; received = sold + reserved + available; reserved = units in held
    reservations; sold = units in committed reservations; no hold left past its expiry (+ grace)."""
    breaches: list[Breach] = []
    for r in await pool.fetch(_AUDIT_SQL, stale_grace_s):
        available = r["on_hand"] - r["reserved"]
        if available < 0:
            breaches.append(Breach(r["sku"], "oversold", f"available {available} < 0"))
        if r["received"] != r["sold"] + r["reserved"] + available:
            breaches.append(Breach(r["sku"], "units do not add up",
                                   f"received {r['received']} != sold {r['sold']} + reserved {r['reserved']} + available {available}"))
        if r["reserved"] != r["held"]:
            breaches.append(Breach(r["sku"], "reserved mismatch", f"reserved {r['reserved']} != held lines {r['held']}"))
        if r["sold"] != r["committed"]:
            breaches.append(Breach(r["sku"], "sold mismatch", f"sold {r['sold']} != committed lines {r['committed']}"))
        if r["stale_holds"]:
            breaches.append(Breach(r["sku"], "stale holds", f"{r['stale_holds']} holds past expiry were never returned"))
    orphans = await pool.fetch("select distinct l.sku from reservation_lines l left join stock_levels s using (sku) where s.sku is null")
    breaches.extend(Breach(r["sku"], "orphan reservation", "reservation lines for an unknown SKU") for r in orphans)
    return breaches
