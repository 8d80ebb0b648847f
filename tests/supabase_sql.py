"""migration.sql on the real PostgreSQL server (127.0.0.1:5432): what a Supabase database has that
the SQL refers to, stubbed, in a transaction that is rolled back.

There is no Supabase database in the kit; these stubs give the SQL the roles (``anon``,
``authenticated``), ``auth.jwt()`` (the claims PostgREST sets) and ``storage.objects`` it uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from helpers import need_server

__all__ = ["PG_DSN", "SUPABASE_STUBS", "fill_variables", "scratch_schema", "supabase_database"]

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"

SUPABASE_STUBS = """
create schema if not exists auth;
create schema if not exists storage;
create or replace function auth.jwt() returns jsonb language sql stable as $$
    select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
$$;
create or replace function auth.uid() returns uuid language sql stable as $$
    select nullif(auth.jwt() ->> 'sub', '')::uuid
$$;
create table if not exists storage.objects (
    id uuid primary key default gen_random_uuid(),
    bucket_id text,
    name text,
    owner uuid,
    metadata jsonb,
    created_at timestamptz default now()
);
alter table storage.objects enable row level security;
"""
"""What a Supabase database has that the migration refers to (and nothing else)."""


def _available() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def add_roles(conn: psycopg.Connection[Any]) -> None:
    """Supabase's API roles, if the cluster lacks them (roles are cluster-wide)."""
    for role in ("anon", "authenticated"):
        if not conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
            conn.execute(f"create role {role} nologin")


@contextmanager
def supabase_database() -> Iterator[psycopg.Connection[Any]]:
    """A connection in a transaction with the stubs in place; everything is rolled back."""
    need_server(_available(), "PostgreSQL on 127.0.0.1:5432")
    conn = psycopg.connect(PG_DSN)
    try:
        add_roles(conn)
        conn.execute(SUPABASE_STUBS)
        yield conn
    finally:
        conn.rollback()
        conn.close()


def scratch_schema(conn: psycopg.Connection[Any]) -> str:
    """A new schema, first on the search path from now on in this transaction."""
    schema = f"gs_supa_{uuid.uuid4().hex[:10]}"
    conn.execute(f'create schema "{schema}"')
    conn.execute(f'set local search_path = "{schema}"')
    return schema


def fill_variables(sql: str, bucket: str = "genstore-test", prefix: str = "images/") -> str:
    """Fill the psql variables of a migration file as ``migration_sql`` does."""
    return (
        sql.replace(":'genstore_bucket'", f"'{bucket}'")
        .replace(":'genstore_images_prefix'", f"'{prefix}'")
        .replace(':"genstore_storage_policy"', f'"genstore_read_own_images_{bucket}"')
    )
