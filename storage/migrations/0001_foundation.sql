-- Foundation schema: a minimal catalog, the inventory owned by InventoryShard actors, and the outbox.
-- depends:

create extension if not exists pg_trgm;

create table surge_meta (
    key   text primary key,
    value jsonb not null,
    updated_at timestamptz not null default now()
);

create table categories (
    id        bigserial primary key,
    slug      text not null unique,
    name      text not null,
    parent_id bigint references categories(id)
);

create table products (
    id           bigserial primary key,
    slug         text not null unique check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name         text not null,
    description  text not null default '',
    status       text not null default 'active' check (status in ('draft', 'active', 'archived')),
    category_id  bigint references categories(id),
    flash_sale   boolean not null default false,
    tags         text[] not null default '{}',
    attributes   jsonb not null default '{}',
    image_urls   text[] not null default '{}',
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);

create table variants (
    sku               text primary key,
    product_id        bigint not null references products(id) on delete cascade,
    name              text not null default '',
    price_minor       bigint not null check (price_minor >= 0),
    compare_at_minor  bigint check (compare_at_minor >= 0),
    currency          char(3) not null default 'USD',
    attributes        jsonb not null default '{}'
);
create index variants_product_idx on variants(product_id);

-- Stock per SKU, written only by the InventoryShard that owns the SKU (group-committed).
-- received = sold + reserved + available, where available = on_hand - reserved.
create table stock_levels (
    sku                 text primary key,
    on_hand             bigint not null check (on_hand >= 0),
    reserved            bigint not null default 0 check (reserved >= 0),
    sold                bigint not null default 0 check (sold >= 0),
    received            bigint not null check (received >= 0),
    low_stock_threshold bigint not null default 0 check (low_stock_threshold >= 0),
    per_customer_cap    bigint check (per_customer_cap > 0),
    version             bigint not null default 0,
    updated_at          timestamptz not null default now(),
    constraint available_not_negative check (on_hand - reserved >= 0)
);

-- One row per (reservation, sku): a reservation may span SKUs, and SKUs are what shards own.
create table reservation_lines (
    reservation_id text not null,
    sku            text not null,
    owner          text not null,
    customer_id    text,
    quantity       bigint not null check (quantity > 0),
    state          text not null check (state in ('held', 'committed', 'released', 'expired')),
    expires_at     timestamptz not null,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    primary key (reservation_id, sku)
);
create index reservation_lines_held_idx on reservation_lines(sku) where state = 'held';
create index reservation_lines_customer_idx on reservation_lines(customer_id, sku) where customer_id is not null;

create table stock_movements (
    id             bigserial primary key,
    sku            text not null,
    kind           text not null,
    delta_on_hand  bigint not null default 0,
    delta_reserved bigint not null default 0,
    reason         text,
    reservation_id text,
    at             timestamptz not null default now()
);
create index stock_movements_sku_idx on stock_movements(sku, id);

-- Transactional outbox: written in the same transaction as the change it describes.
create table outbox (
    id         bigserial primary key,
    event_id   uuid not null unique,
    topic      text not null,
    key        text not null,
    type       text not null,
    payload    jsonb not null,
    created_at timestamptz not null default now(),
    published_at timestamptz
);
create index outbox_unpublished_idx on outbox(id) where published_at is null;
