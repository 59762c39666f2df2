-- Analytics rollups, written by the Analytics actor from the event streams (actors/analytics.py).
-- Counters per time bucket and grain (minute for the live dashboard, pruned after a few days; hour
-- and day kept for history). Every event is folded in once: its id goes into analytics_seen in the
-- same transaction as its increments, so a redelivered event adds nothing.
-- depends: 0002_orders

create table analytics_seen (
    event_id  uuid primary key,
    seen_at   timestamptz not null default now()
);
create index analytics_seen_at_idx on analytics_seen(seen_at);

-- metric: orders_placed, orders_paid, revenue_minor:<CUR>, units_sold, payment_failures, orders_cancelled,
-- refunded_minor:<CUR>, add_to_cart, low_stock, sold_out, orders_new_customer, orders_returning_customer,
-- product_views (a copy of Valkey's counters: set, not added)
create table analytics_counts (
    grain   text not null check (grain in ('minute', 'hour', 'day')),
    bucket  timestamptz not null,
    metric  text not null,
    value   bigint not null,
    primary key (grain, bucket, metric)
);

create table analytics_products (
    grain          text not null check (grain in ('minute', 'hour', 'day')),
    bucket         timestamptz not null,
    sku            text not null,
    units          bigint not null,
    revenue_minor  bigint not null,
    currency       char(3) not null,
    primary key (grain, bucket, sku)
);

-- one row per customer who paid: a registered one by id, a guest by e-mail (lower case)
create table analytics_customers (
    customer_key    text primary key,
    customer_id     uuid,
    email           text not null,
    orders          bigint not null,
    spent_minor     bigint not null,
    currency        char(3) not null,
    first_order_at  timestamptz not null,
    last_order_at   timestamptz not null
);
create index analytics_customers_spent_idx on analytics_customers(spent_minor desc);

create table analytics_alerts (
    event_id   uuid primary key,
    sku        text not null,
    kind       text not null check (kind in ('LowStock', 'SoldOut', 'BackInStock')),
    available  bigint not null,
    at         timestamptz not null
);
create index analytics_alerts_at_idx on analytics_alerts(at desc);
