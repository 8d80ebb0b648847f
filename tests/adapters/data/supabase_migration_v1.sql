-- genstore on Supabase: catalog tables, their indexes, and row-level security.
--
-- Apply once per project (it is idempotent: applying it again changes nothing), in the SQL
-- editor or with psql. `genstore supabase-sql` prints it with your bucket filled in; with psql
-- you can also fill the three variables yourself:
--   psql -v genstore_bucket=genstore -v genstore_images_prefix=images/ \
--        -v genstore_storage_policy=genstore_read_own_images_genstore -f migration.sql
--
-- genstore writes with the service role, which bypasses row-level security. Signed-in users
-- (the `authenticated` role) may only read their own rows and their own images, as the images
-- service of the seed has it. User ids are text (Clerk-style `user_...`, not uuids), so they are
-- compared with the JWT's `sub` claim, `auth.jwt() ->> 'sub'`, never `auth.uid()` (a uuid cast
-- that fails on such ids).

-- Operations: one row per record; `record` holds the whole record as written (the truth is the
-- JSON sidecar in Storage, this is an index of it).
create table if not exists genstore_operations (
    operation_id    text collate "C" primary key,
    operation_type  text not null,
    status          text not null,
    user_id         text collate "C",
    idempotency_key text,
    created_at      timestamptz not null,
    record          jsonb not null,
    constraint genstore_operations_record_matches
        check (record ->> 'operation_id' = operation_id)
);

-- History pages newest first by (created_at, operation_id), optionally filtered.
create index if not exists genstore_operations_created_idx
    on genstore_operations (created_at desc, operation_id desc);
create index if not exists genstore_operations_user_idx
    on genstore_operations (user_id, created_at desc, operation_id desc);
create index if not exists genstore_operations_type_idx
    on genstore_operations (operation_type, created_at desc, operation_id desc);
create index if not exists genstore_operations_user_type_idx
    on genstore_operations (user_id, operation_type, created_at desc, operation_id desc);
create index if not exists genstore_operations_status_idx
    on genstore_operations (status, created_at desc, operation_id desc);
create index if not exists genstore_operations_idempotency_idx
    on genstore_operations (idempotency_key, created_at desc, operation_id desc)
    where idempotency_key is not null;

-- User images: one row per (user, image).
create table if not exists genstore_images (
    user_id    text collate "C" not null,
    image_id   text collate "C" not null,
    status     text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    record     jsonb not null,
    primary key (user_id, image_id),
    constraint genstore_images_record_matches
        check (record ->> 'image_id' = image_id and record ->> 'user_id' = user_id)
);

-- A user's images newest first by (created_at, image_id), with or without a status filter.
create index if not exists genstore_images_user_created_idx
    on genstore_images (user_id, created_at desc, image_id desc);
create index if not exists genstore_images_user_status_idx
    on genstore_images (user_id, status, created_at desc, image_id desc);

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
