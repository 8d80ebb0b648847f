-- genstore on Supabase: catalog tables, their indexes, and row-level security.
--
-- Apply once per project and bucket, in the SQL editor or with psql; it is idempotent (applying it
-- again changes nothing) and upgrades the tables an earlier version made. `genstore supabase-sql`
-- prints it with your bucket filled in; with psql you can also fill the three variables yourself:
--   psql -v genstore_bucket=genstore -v genstore_images_prefix=images/ \
--        -v genstore_storage_policy=genstore_read_own_images_genstore -f migration.sql
--
-- genstore writes with the service role, which bypasses row-level security. Signed-in users
-- (the `authenticated` role) may only read their own rows and their own images, as the images
-- service of the seed has it. User ids are text (Clerk-style `user_...`, not uuids), so they are
-- compared with the JWT's `sub` claim, `auth.jwt() ->> 'sub'`, never `auth.uid()` (a uuid cast
-- that fails on such ids).

-- Several stores may share these tables (two buckets, two prefixes, or stores elsewhere with
-- `?catalog=supabase`): every row carries `store`, the URL of the store it indexes, and every key
-- and index leads with it, so a store reads and writes only its own rows.

-- Operations: one row per (store, record); `record` holds the whole record as written (the truth
-- is the JSON sidecar in the store, this is an index of it).
create table if not exists genstore_operations (
    store           text collate "C" not null default '',
    operation_id    text collate "C" not null,
    operation_type  text not null,
    status          text not null,
    user_id         text collate "C",
    idempotency_key text,
    created_at      timestamptz not null,
    record          jsonb not null,
    constraint genstore_operations_pkey primary key (store, operation_id),
    constraint genstore_operations_record_matches
        check (record ->> 'operation_id' = operation_id)
);

-- User images: one row per (store, user, image).
create table if not exists genstore_images (
    store      text collate "C" not null default '',
    user_id    text collate "C" not null,
    image_id   text collate "C" not null,
    status     text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    record     jsonb not null,
    constraint genstore_images_pkey primary key (store, user_id, image_id),
    constraint genstore_images_record_matches
        check (record ->> 'image_id' = image_id and record ->> 'user_id' = user_id)
);

-- Upgrade from the first version of this SQL, whose tables had no `store` column: add it, and
-- move the primary keys and indexes onto it (nothing happens once done). Rewriting the keys
-- locks the tables while it runs. The rows already there get store '' (no store reads those);
-- the first store whose catalog opens afterwards takes them once, as the PostgreSQL catalog
-- gives a migrated catalog's rows to the store that migrates it. To give them to a store of your
-- choosing instead, run this before opening any (the store's URL without its ?options):
--   update genstore_operations set store = 'supabase://bucket/prefix' where store = '';
--   update genstore_images set store = 'supabase://bucket/prefix' where store = '';
-- Stop genstore versions older than this SQL before applying it: their writes are refused after.
alter table genstore_operations add column if not exists store text collate "C" not null default '';
alter table genstore_images add column if not exists store text collate "C" not null default '';
do $$
begin
    if (select pg_get_constraintdef(oid) from pg_constraint
        where conrelid = 'genstore_operations'::regclass and contype = 'p')
        is distinct from 'PRIMARY KEY (store, operation_id)' then
        alter table genstore_operations
            drop constraint if exists genstore_operations_pkey,
            add constraint genstore_operations_pkey primary key (store, operation_id);
    end if;
    if (select pg_get_constraintdef(oid) from pg_constraint
        where conrelid = 'genstore_images'::regclass and contype = 'p')
        is distinct from 'PRIMARY KEY (store, user_id, image_id)' then
        alter table genstore_images
            drop constraint if exists genstore_images_pkey,
            add constraint genstore_images_pkey primary key (store, user_id, image_id);
    end if;
end
$$;
drop index if exists genstore_operations_created_idx;
drop index if exists genstore_operations_user_idx;
drop index if exists genstore_operations_type_idx;
drop index if exists genstore_operations_user_type_idx;
drop index if exists genstore_operations_status_idx;
drop index if exists genstore_operations_idempotency_idx;
drop index if exists genstore_images_user_created_idx;
drop index if exists genstore_images_user_status_idx;

-- A store's history pages newest first by (created_at, operation_id), optionally filtered.
create index if not exists genstore_operations_store_created_idx
    on genstore_operations (store, created_at desc, operation_id desc);
create index if not exists genstore_operations_store_user_idx
    on genstore_operations (store, user_id, created_at desc, operation_id desc);
create index if not exists genstore_operations_store_type_idx
    on genstore_operations (store, operation_type, created_at desc, operation_id desc);
create index if not exists genstore_operations_store_user_type_idx
    on genstore_operations (store, user_id, operation_type, created_at desc, operation_id desc);
create index if not exists genstore_operations_store_status_idx
    on genstore_operations (store, status, created_at desc, operation_id desc);
create index if not exists genstore_operations_store_idempotency_idx
    on genstore_operations (store, idempotency_key, created_at desc, operation_id desc)
    where idempotency_key is not null;

-- A user's images in a store, newest first by (created_at, image_id), with or without a status.
create index if not exists genstore_images_store_user_created_idx
    on genstore_images (store, user_id, created_at desc, image_id desc);
create index if not exists genstore_images_store_user_status_idx
    on genstore_images (store, user_id, status, created_at desc, image_id desc);

-- Row-level security: each signed-in user reads only their own rows; nobody but the service
-- role writes (no insert/update/delete policy exists, so those are denied).
alter table genstore_operations enable row level security;
alter table genstore_images enable row level security;

drop policy if exists genstore_operations_read_own on genstore_operations;
create policy genstore_operations_read_own on genstore_operations
    for select to authenticated
    using (user_id = (select auth.jwt() ->> 'sub'));

drop policy if exists genstore_images_read_own on genstore_images;
create policy genstore_images_read_own on genstore_images
    for select to authenticated
    using (user_id = (select auth.jwt() ->> 'sub'));

revoke all on genstore_operations, genstore_images from anon;
grant select on genstore_operations, genstore_images to authenticated;

-- Storage: in the genstore bucket a signed-in user reads only objects under
-- `<prefix>images/<their user id>/`; starts_with (not LIKE) so `_` in ids is no wildcard.
drop policy if exists :"genstore_storage_policy" on storage.objects;
create policy :"genstore_storage_policy" on storage.objects
    for select to authenticated
    using (
        bucket_id = :'genstore_bucket'
        and starts_with(name, :'genstore_images_prefix' || (select auth.jwt() ->> 'sub') || '/')
    );
