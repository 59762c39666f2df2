-- Facet counts of text-free listings (category, price, rating, stock and attribute filters only),
-- kept so that those searches never count product rows (storage/search/postgres.py).
--
-- search_facet_cells holds, per cell (category, price bucket, rating floor, rated, in stock, the
-- product's whole attribute object), how many active products it has: ~21,000 cells for 100,000
-- seeded products, a root category's listing reads ~5,000 of them instead of ~20,000 products.
-- Any listing filter is a condition on a cell's keys, so a cell is wholly in or out of a result.
--
-- Exact and transactional: a trigger on products appends +1/-1 rows to search_facet_deltas in the
-- transaction that changes a product (append only, so the inventory owners' stock flips never wait
-- on a counter row lock), and readers add the deltas to the cells in the same snapshot.
-- search_facets_compact() folds the deltas into the cells in one statement; the catalog event
-- consumer calls it after each batch and the seed after loading. Whether it has run or not changes
-- only how many delta rows a reader adds, never the counts.
-- depends: 0004_catalog

-- The price facet's buckets: PRICE_EDGES in storage/search/base.py (a unit test keeps them equal).
create function search_price_bucket(price bigint) returns int language sql immutable parallel safe
    return width_bucket(price, '{0,2500,5000,10000,25000,50000}'::int8[]);

create table search_facet_cells (
    category_id   bigint,
    price_bucket  int     not null,
    rating_floor  int     not null,  -- floor(rating_avg): rating_avg >= r (r whole) iff rating_floor >= r
    rated         boolean not null,  -- rating_count > 0: the rating facet counts rated products only
    in_stock      boolean not null,
    attributes    jsonb   not null,
    n             int     not null,  -- int: sum(int) is a bigint sum, sum(bigint) a slow numeric one
    unique nulls not distinct (category_id, price_bucket, rating_floor, rated, in_stock, attributes)
);
create index search_facet_cells_category_idx on search_facet_cells (category_id);

create table search_facet_deltas (like search_facet_cells);

create function products_facet_delta() returns trigger language plpgsql as $$
begin
    if tg_op <> 'INSERT' and old.status = 'active' then
        insert into search_facet_deltas values (old.category_id, search_price_bucket(old.price_min_minor),
            floor(old.rating_avg)::int, old.rating_count > 0, old.in_stock, old.attributes, -1);
    end if;
    if tg_op <> 'DELETE' and new.status = 'active' then
        insert into search_facet_deltas values (new.category_id, search_price_bucket(new.price_min_minor),
            floor(new.rating_avg)::int, new.rating_count > 0, new.in_stock, new.attributes, 1);
    end if;
    return null;
end $$;
create trigger products_facet_delta_ins after insert on products
    for each row when (new.status = 'active') execute function products_facet_delta();
create trigger products_facet_delta_del after delete on products
    for each row when (old.status = 'active') execute function products_facet_delta();
-- only when a product enters, leaves or moves between cells: price edits inside a bucket, stock
-- ticks and description edits add nothing
create trigger products_facet_delta_upd after update on products
    for each row when ((old.status = 'active' or new.status = 'active') and (
        old.status is distinct from new.status
        or old.category_id is distinct from new.category_id
        or search_price_bucket(old.price_min_minor) <> search_price_bucket(new.price_min_minor)
        or floor(old.rating_avg) <> floor(new.rating_avg)
        or (old.rating_count > 0) <> (new.rating_count > 0)
        or old.in_stock <> new.in_stock
        or old.attributes <> new.attributes))
    execute function products_facet_delta();

create function products_facet_truncate() returns trigger language plpgsql as $$
begin
    truncate search_facet_cells, search_facet_deltas;
    return null;
end $$;
create trigger products_facet_truncate after truncate on products
    for each statement execute function products_facet_truncate();

-- Fold the deltas into the cells (one statement: a reader sees the deltas before or the cells
-- after, equal sums either way), then drop emptied cells. Returns the delta rows folded.
create function search_facets_compact() returns bigint language plpgsql as $$
declare folded bigint;
begin
    with d as (delete from search_facet_deltas returning *),
    s as (select category_id, price_bucket, rating_floor, rated, in_stock, attributes, sum(n)::int as n
          from d group by 1, 2, 3, 4, 5, 6),
    u as (insert into search_facet_cells as c select * from s where n <> 0
          on conflict (category_id, price_bucket, rating_floor, rated, in_stock, attributes)
          do update set n = c.n + excluded.n)
    select count(*) into folded from d;
    delete from search_facet_cells where n = 0;
    return folded;
end $$;

insert into search_facet_cells
select category_id, search_price_bucket(price_min_minor), floor(rating_avg)::int, rating_count > 0, in_stock,
       attributes, count(*)
from products where status = 'active' group by 1, 2, 3, 4, 5, 6;
