-- Stock adjustments carry the caller's idempotency key, so a retried restock or write-off is applied once.
alter table stock_movements add column adjustment_id text;
create unique index stock_movements_adjustment_idx on stock_movements(adjustment_id) where adjustment_id is not null;
