-- Catalog: SEO fields, derived search columns (full-text document, price range, stock, rating),
-- a category tree with order, reviews and the aggregates they keep current.
-- depends: 0001_foundation 0002_orders

alter table categories
    add column description text not null default '',
    add column position    int  not null default 0,
    add column updated_at  timestamptz not null default now();
create index categories_parent_idx on categories(parent_id);

alter table products
    add column seo_title        text not null default '',
    add column seo_description  text not null default '',
    -- derived, kept by catalog_store (and the seed) when variants change: listings sort and filter on them
    add column price_min_minor  bigint not null default 0,
    add column price_max_minor  bigint not null default 0,
    add column currency         char(3) not null default 'USD',
    -- derived from stock_levels by the trigger below: any variant with available > 0
    add column in_stock         boolean not null default false,
    -- derived from approved reviews in the transaction that changes them
    add column rating_count     int not null default 0,
    add column rating_sum       int not null default 0,
    add column rating_avg       numeric(3, 2) not null default 0,
    add column published_at     timestamptz,
    add column search_doc       tsvector;

-- Weighted document: name A, tags B, description C. A trigger rather than a generated column because
-- array_to_string is only STABLE; it fires for COPY too, so the bulk seed gets it for free.
create function products_search_doc() returns trigger language plpgsql as $$
begin
    new.search_doc :=
        setweight(to_tsvector('english', coalesce(new.name, '')), 'A') ||
        setweight(to_tsvector('english', array_to_string(new.tags, ' ')), 'B') ||
        setweight(to_tsvector('english', coalesce(new.description, '')), 'C');
    return new;
end $$;
create trigger products_search_doc_ins before insert on products
    for each row execute function products_search_doc();
create trigger products_search_doc_upd before update of name, tags, description on products
    for each row execute function products_search_doc();
update products set name = name;  -- fill search_doc for rows that exist

create index products_search_idx on products using gin (search_doc);
create index products_name_trgm_idx on products using gin (name gin_trgm_ops);
create index products_attributes_idx on products using gin (attributes jsonb_path_ops);
-- listings read what they filter, facet and sort on from this index alone (index-only scans)
create index products_active_category_idx on products (category_id)
    include (id, price_min_minor, rating_avg, rating_count, in_stock, created_at, attributes) where status = 'active';
create index products_active_price_idx on products (price_min_minor, id) where status = 'active';
create index products_active_newest_idx on products (created_at desc, id) where status = 'active';
create index products_active_rating_idx on products (rating_avg desc, id) where status = 'active';

-- in_stock follows stock_levels. The WHEN clause keeps the inventory owners' hot path free: the
-- trigger body runs only when a SKU crosses between sold out and available.
create function stock_levels_in_stock() returns trigger language plpgsql as $$
begin
    update products p set in_stock = exists (
            select 1 from variants v join stock_levels s on s.sku = v.sku
            where v.product_id = p.id and s.on_hand - s.reserved > 0)
    where p.id = (select product_id from variants where sku = new.sku);
    return null;
end $$;
create trigger stock_levels_in_stock_ins after insert on stock_levels
    for each row when (new.on_hand - new.reserved > 0) execute function stock_levels_in_stock();
create trigger stock_levels_in_stock_upd after update on stock_levels
    for each row when ((old.on_hand - old.reserved > 0) is distinct from (new.on_hand - new.reserved > 0))
    execute function stock_levels_in_stock();

-- The derived columns listings sort and filter on, from the product's variants and their stock.
-- Called by catalog_store in the transaction that changes a product, and by the demo seed.
create function refresh_product_derived(pid bigint) returns void language sql as $$
    update products p set
        price_min_minor = coalesce(x.lo, 0), price_max_minor = coalesce(x.hi, 0), currency = coalesce(x.cur, p.currency),
        in_stock = coalesce(x.avail, false),
        published_at = case when p.status = 'active' then coalesce(p.published_at, now()) else p.published_at end
    from (select min(v.price_minor) lo, max(v.price_minor) hi, min(v.currency) cur,
                 bool_or(coalesce(s.on_hand - s.reserved, 0) > 0) avail
          from variants v left join stock_levels s on s.sku = v.sku where v.product_id = pid) x
    where p.id = pid
$$;
select refresh_product_derived(id) from products;  -- backfill rows that exist

alter table variants
    add column position   int not null default 0,
    add column image_url  text;

-- One review per customer per product; `verified` when they bought it (a paid-or-later order).
create table reviews (
    id           bigserial primary key,
    product_id   bigint not null references products(id) on delete cascade,
    customer_id  uuid not null,
    author_name  text not null default '',
    rating       smallint not null check (rating between 1 and 5),
    title        text not null default '',
    body         text not null default '',
    verified     boolean not null default false,
    status       text not null default 'pending' check (status in ('pending', 'approved', 'hidden')),
    moderated_by text,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    unique (product_id, customer_id)
);
create index reviews_product_approved_idx on reviews(product_id, created_at desc) where status = 'approved';
create index reviews_status_idx on reviews(status, created_at);

-- co-purchase and trending reads join order lines to their order's status
create index order_lines_order_product_idx on order_lines(order_id, product_id);
create index orders_paid_at_idx on orders(paid_at) where paid_at is not null;
-- suggestions for one or two typed letters: a prefix of the lower-cased name
create index products_name_prefix_idx on products (lower(name) text_pattern_ops) where status = 'active';
