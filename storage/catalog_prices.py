"""What the cart and checkout need to know about SKUs: price, product, whether it is on sale now
and whether it is a flash-sale item. One query for many SKUs."""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class SkuInfo:
    sku: str
    product_id: int
    product_slug: str
    name: str
    price_minor: int
    compare_at_minor: int | None
    currency: str
    active: bool
    flash_sale: bool
    per_customer_cap: int | None


async def sku_info(pool: asyncpg.Pool, skus: list[str]) -> dict[str, SkuInfo]:
    if not skus:
        return {}
    rows = await pool.fetch(
        """select v.sku, p.id as product_id, p.slug, p.name || case when v.name <> '' and v.name <> 'Default'
                  then ' - ' || v.name else '' end as name,
                  v.price_minor, v.compare_at_minor, v.currency, p.status = 'active' as active, p.flash_sale,
                  s.per_customer_cap
           from variants v join products p on p.id = v.product_id
           left join stock_levels s on s.sku = v.sku
           where v.sku = any($1::text[])""", list(skus))
    return {r["sku"]: SkuInfo(r["sku"], r["product_id"], r["slug"], r["name"], r["price_minor"], r["compare_at_minor"],
                              r["currency"].strip(), r["active"], r["flash_sale"], r["per_customer_cap"]) for r in rows}
