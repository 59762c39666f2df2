-- Carts (owned by CartShard actors), coupons, orders (owned by OrderPipeline actors), payments,
-- returns, processed Stripe events and the notification mailbox.
-- depends: 0001_foundation

-- A cart is one aggregate, written whole by the CartShard that owns it (group-committed):
-- `doc` holds lines, saved-for-later items, the coupon code and flash-sale holds.
create table carts (
    id           text primary key,
    customer_id  uuid,
    status       text not null default 'active' check (status in ('active', 'merged', 'converted')),
    currency     char(3) not null default 'USD',
    doc          jsonb not null,
    version      bigint not null default 0,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);
create unique index carts_customer_active_idx on carts(customer_id) where customer_id is not null and status = 'active';

create table coupons (
    code                 text primary key check (code = upper(code)),
    kind                 text not null check (kind in ('percent', 'fixed')),
    value                bigint not null check (value > 0),
    currency             char(3) not null default 'USD',
    min_subtotal_minor   bigint not null default 0 check (min_subtotal_minor >= 0),
    starts_at            timestamptz,
    ends_at              timestamptz,
    usage_limit          bigint check (usage_limit > 0),
    per_customer_limit   bigint check (per_customer_limit > 0),
    times_used           bigint not null default 0 check (times_used >= 0),
    active               boolean not null default true,
    created_at           timestamptz not null default now(),
    constraint percent_at_most_100 check (kind <> 'percent' or value <= 100),
    constraint usage_within_limit check (usage_limit is null or times_used <= usage_limit)
);

create sequence order_number_seq start 100001;

create table orders (
    id                  bigserial primary key,
    number              text not null unique check (number ~ '^ORD-[0-9]+$'),
    -- the checkout's idempotency key, scoped to the cart it checks out: the same submit, the same order
    cart_id             text not null,
    idempotency_key     text not null,
    request_fingerprint text not null,  -- what was asked with that key: the same key asking otherwise is refused
    customer_id         uuid,
    email               text not null,
    status              text not null check (status in ('pending_payment', 'paid', 'fulfilling', 'shipped',
                                                        'delivered', 'cancelled', 'return_requested',
                                                        'return_approved', 'return_received', 'refunded')),
    currency            char(3) not null,
    subtotal_minor      bigint not null check (subtotal_minor >= 0),
    discount_minor      bigint not null default 0 check (discount_minor >= 0),
    shipping_minor      bigint not null default 0 check (shipping_minor >= 0),
    total_minor         bigint not null check (total_minor >= 0),
    coupon_code         text,
    shipping_method     text not null check (shipping_method in ('standard', 'express')),
    shipping_address    jsonb not null,
    reservation_ids     text[] not null,  -- the order's own hold, plus flash-sale holds adopted from the cart
    -- payment: Surge's own idempotency key for Stripe (localstripe ignores them; Stripe honours them)
    payment_key         text not null unique,
    payment_intent_id   text unique,
    payment_status      text,
    capture_method      text not null default 'automatic' check (capture_method in ('automatic', 'manual')),
    captured_minor      bigint not null default 0 check (captured_minor >= 0),
    refunded_minor      bigint not null default 0 check (refunded_minor >= 0),
    failure_message     text,
    carrier             text,
    tracking_number     text,
    version             bigint not null default 0,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    paid_at             timestamptz,
    shipped_at          timestamptz,
    delivered_at        timestamptz,
    cancelled_at        timestamptz,
    expires_at          timestamptz not null,
    unique (cart_id, idempotency_key),
    constraint refund_within_capture check (refunded_minor <= captured_minor)
);
create index orders_customer_idx on orders(customer_id, created_at desc) where customer_id is not null;
create index orders_status_idx on orders(status, created_at desc);
create index orders_pending_idx on orders(expires_at) where status = 'pending_payment';

create table order_lines (
    order_id          bigint not null references orders(id) on delete cascade,
    sku               text not null,
    product_id        bigint not null,
    name              text not null,
    quantity          bigint not null check (quantity > 0),
    unit_price_minor  bigint not null check (unit_price_minor >= 0),
    line_total_minor  bigint not null check (line_total_minor >= 0),
    primary key (order_id, sku)
);
create index order_lines_product_idx on order_lines(product_id);

-- Every status change of an order, for tracking pages and audits.
create table order_history (
    id        bigserial primary key,
    order_id  bigint not null references orders(id) on delete cascade,
    status    text not null,
    note      text,
    actor     text,
    at        timestamptz not null default now()
);
create index order_history_order_idx on order_history(order_id, id);

create table coupon_redemptions (
    code         text not null references coupons(code),
    order_id     bigint not null references orders(id),
    customer_key text not null,  -- customer id, or the guest's email
    at           timestamptz not null default now(),
    primary key (code, order_id)
);
create index coupon_redemptions_customer_idx on coupon_redemptions(code, customer_key);

create table returns (
    id            bigserial primary key,
    order_id      bigint not null references orders(id),
    status        text not null check (status in ('requested', 'approved', 'received', 'refunded', 'rejected')),
    reason        text not null,
    lines         jsonb not null,
    refund_minor  bigint not null default 0 check (refund_minor >= 0),
    requested_at  timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);
create unique index returns_open_idx on returns(order_id) where status in ('requested', 'approved', 'received');

create table refunds (
    id               bigserial primary key,
    order_id         bigint not null references orders(id),
    idempotency_key  text not null unique,
    stripe_refund_id text unique,
    amount_minor     bigint not null check (amount_minor > 0),
    status           text not null,
    created_at       timestamptz not null default now()
);

-- A Stripe event is applied once: its id is recorded in the same transaction as its effect.
create table stripe_events (
    event_id     text primary key,
    type         text not null,
    object_id    text,
    received_at  timestamptz not null default now()
);

-- The local mailbox: every customer notification, whether or not an SMTP server sent it.
create table notifications (
    id           bigserial primary key,
    event_id     uuid not null unique,  -- the outbox event it answers: one notification per event
    kind         text not null,
    to_email     text not null,
    subject      text not null,
    body         text not null,
    order_number text,
    transport    text not null default 'mailbox',
    created_at   timestamptz not null default now(),
    sent_at      timestamptz
);
create index notifications_order_idx on notifications(order_number);
