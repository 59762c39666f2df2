-- Accounts: users, addresses, refresh and password-reset tokens, and the admin audit log.
-- Personal data a leak would hurt (phone, address fields) is stored encrypted by storage/crypto.py:
-- `v1.<key id>.<base64url(nonce || AES-GCM ciphertext)>`, so a key can be rotated and the rows still
-- under an old key found by their prefix. Tokens are stored as SHA-256 hashes, never raw.
-- depends: 0001_foundation

create table users (
    id             uuid primary key default gen_random_uuid(),
    email          text not null,           -- unique case-insensitively (index below)
    password_hash  text not null,           -- argon2id, PHC string (parameters inside)
    role           text not null default 'customer' check (role in ('customer', 'vendor', 'admin')),
    status         text not null default 'active' check (status in ('active', 'deactivated')),
    name           text not null default '',
    phone_enc      text,                    -- encrypted
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    deactivated_at timestamptz
);
create unique index users_email_idx on users (lower(email));
create index users_role_idx on users(role, created_at desc);
create index users_search_idx on users using gin ((lower(email) || ' ' || lower(name)) gin_trgm_ops);

create table addresses (
    id          uuid primary key,            -- chosen by the writer: it is bound into the ciphertexts
    user_id     uuid not null references users(id) on delete cascade,
    label       text not null default '',
    -- every field below is encrypted (the row id and field name are the AES-GCM associated data)
    name_enc    text not null,
    line1_enc   text not null,
    line2_enc   text,
    city_enc    text not null,
    region_enc  text,
    postal_enc  text not null,
    country     char(2) not null,            -- not personal on its own; kept plain for shipping rules
    is_default  boolean not null default false,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
create index addresses_user_idx on addresses(user_id, created_at);

-- Rotating refresh tokens: each use marks the row used and issues a child in the same family.
-- Presenting a used token again is reuse (a stolen token): the whole family is revoked.
create table refresh_tokens (
    id          uuid primary key default gen_random_uuid(),
    token_hash  bytea not null unique,       -- sha256 of the raw token
    user_id     uuid not null references users(id) on delete cascade,
    family_id   uuid not null,
    parent_id   uuid references refresh_tokens(id) on delete set null,
    used_at     timestamptz,
    revoked_at  timestamptz,
    expires_at  timestamptz not null,
    created_at  timestamptz not null default now()
);
create index refresh_tokens_family_idx on refresh_tokens(family_id);
create index refresh_tokens_user_idx on refresh_tokens(user_id) where revoked_at is null;

create table password_reset_tokens (
    id          uuid primary key default gen_random_uuid(),
    token_hash  bytea not null unique,
    user_id     uuid not null references users(id) on delete cascade,
    expires_at  timestamptz not null,
    used_at     timestamptz,
    created_at  timestamptz not null default now()
);
create index password_reset_tokens_user_idx on password_reset_tokens(user_id) where used_at is null;

-- Every admin action, with who did it (actor_id null = the service token).
create table admin_audit_log (
    id          bigserial primary key,
    actor_id    uuid,
    actor_email text,
    action      text not null,
    target_type text not null,
    target_id   text,
    detail      jsonb not null default '{}',
    at          timestamptz not null default now()
);
create index admin_audit_log_at_idx on admin_audit_log(at desc, id desc);
create index admin_audit_log_target_idx on admin_audit_log(target_type, target_id, at desc);
