"""Stores sharing one Supabase catalog, and tables of the first migration.sql upgraded.

The catalog runs against the FAKE PostgREST (tests/fakes, no PostgREST in the kit): it serves the
tables of migration.sql (``store`` leading every key) or, with ``tables_version = 1``, those of its
first version. migration.sql itself runs on the real PostgreSQL at 127.0.0.1:5432 (scratch schema,
stubs for what Supabase provides): it applies twice, upgrades first-version tables with their rows
to what a fresh install makes, and what the fake's ``apply_migration`` does is what it does.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import genstore
import pytest
from fakes.supabase_server import FakeSupabase, running_fake_supabase
from genstore import ConfigurationError, ImageRecord, OperationRecord
from genstore._url import parse_catalog_url, parse_url
from genstore.plugin import HistoryQuery
from genstore_adapters.supabase.blobs import SupabaseBlobStore, open_supabase
from genstore_adapters.supabase.catalog import SupabaseCatalog, open_supabase_catalog
from shared_catalog import check_stores_stay_apart

T0 = datetime(2025, 6, 18, 0, 39, 32, 148000, tzinfo=UTC)
FIRST_SQL = Path(__file__).parent / "data" / "supabase_migration_v1.sql"
"""migration.sql as it was before rows carried their store (what projects have applied)."""


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeSupabase, str]]:
    with running_fake_supabase() as running:
        yield running


@pytest.fixture
def fake(server: tuple[FakeSupabase, str], monkeypatch: pytest.MonkeyPatch) -> FakeSupabase:
    fake, url = server
    fake.reset()
    monkeypatch.setenv("SUPABASE_URL", url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", fake.service_role_key)
    monkeypatch.delenv("SUPABASE_STORAGE_URL", raising=False)
    monkeypatch.delenv("GENSTORE_CATALOG", raising=False)
    return fake


def op(i: int, **fields: Any) -> OperationRecord:
    values: dict[str, Any] = {
        "operation_id": f"20250618_01JY{i:022d}",
        "operation_type": "text_to_image",
        "status": "succeeded",
        "created_at": T0 + timedelta(seconds=i),
        "user_id": "alice",
        **fields,
    }
    return OperationRecord(**values)


def image(user: str, i: int) -> ImageRecord:
    return ImageRecord(
        image_id=f"img_{i:04d}", user_id=user, prompt="p", key=f"images/{user}/{i}.png",
        size=10, sha256="0" * 64, width=4, height=4,
        created_at=T0 + timedelta(seconds=i), updated_at=T0 + timedelta(seconds=i),
    )  # fmt: skip


class Opened:
    """Blob stores and their catalogs opened by a test, closed at its end."""

    def __init__(self) -> None:
        self.closing: list[Any] = []

    def catalog(self, store_url: str) -> SupabaseCatalog:
        blobs = open_supabase(parse_url(store_url))
        assert isinstance(blobs, SupabaseBlobStore)
        self.closing.append(blobs)
        catalog = open_supabase_catalog(parse_catalog_url("supabase"), blobs)
        assert isinstance(catalog, SupabaseCatalog)
        self.closing.append(catalog)
        return catalog


@pytest.fixture
def opened(fake: FakeSupabase) -> Iterator[Opened]:
    found = Opened()
    yield found
    for item in reversed(found.closing):
        item.close()


def ids(records: list[OperationRecord]) -> list[str]:
    return [r.operation_id for r in records]


# -- stores sharing the catalog ------------------------------------------------------------------


def test_stores_sharing_the_catalog_never_see_or_touch_each_others_rows(
    opened: Opened, fake: FakeSupabase
) -> None:
    a = opened.catalog("supabase://shared/a")
    b = opened.catalog("supabase://shared/b")
    assert (a.store, b.store) == ("supabase://shared/a", "supabase://shared/b")
    a.upsert_operation(op(1, idempotency_key="same-key"))
    a.upsert_operation(op(2))
    a.upsert_image(image("alice", 1))
    theirs = op(1, idempotency_key="same-key", prompt="b's own")
    b.upsert_operation(theirs)  # the same id and idempotency key in another store: no clash
    assert a.get_operation(op(1).operation_id) == op(1, idempotency_key="same-key")
    assert b.get_operation(op(1).operation_id) == theirs
    assert ids(b.query_operations(HistoryQuery(user_id="alice"))) == [op(1).operation_id]
    assert list(b.operation_ids()) == [op(1).operation_id]
    assert b.get_image("alice", "img_0001") is None and list(b.image_ids()) == []
    assert b.list_images("alice", status=None, offset=0, limit=10) == ([], 0)
    assert (b.stats().operations, b.stats().images) == (1, 0)
    assert list(b.unreadable_rows()) == []
    b.delete_operation(op(2).operation_id)
    b.delete_image("alice", "img_0001")
    b.clear()
    assert (a.stats().operations, a.stats().images) == (2, 1)
    assert ids(a.query_operations(HistoryQuery())) == [op(2).operation_id, op(1).operation_id]
    assert b.stats().operations == 0
    stores = {key[0] for rows in fake.tables.values() for key in rows}
    assert stores == {"supabase://shared/a"}


def _rows(fake: FakeSupabase, store: str) -> list[tuple[str, ...]]:
    """Every row of ``store``, as stored (the fake's tables are what PostgREST would serve)."""
    found = [
        (row["operation_id"], "", json.dumps(row["record"], sort_keys=True))
        for row in fake.tables["genstore_operations"].values()
        if row["store"] == store
    ] + [
        (row["user_id"], row["image_id"], json.dumps(row["record"], sort_keys=True))
        for row in fake.tables["genstore_images"].values()
        if row["store"] == store
    ]
    return sorted(found)


@pytest.mark.parametrize(
    "urls",
    [
        ("supabase://shared/a", "supabase://shared/b"),  # two prefixes of one bucket
        ("supabase://first", "supabase://second"),  # two buckets
        ("memory://{}/a?catalog=supabase", "memory://{}/b?catalog=supabase"),  # stores elsewhere
    ],
    ids=["prefixes", "buckets", "elsewhere"],
)
def test_history_stats_verify_fix_and_reindex_of_one_store_never_touch_another(
    fake: FakeSupabase, urls: tuple[str, str]
) -> None:
    def corrupt(store: str, operation_id: str) -> None:
        # A jsonb value no record parses from; the table's CHECK lets it through (its
        # ``record ->> 'operation_id'`` is NULL), so the real database could hold it too.
        with fake.lock:
            fake.tables["genstore_operations"][(store, operation_id)]["record"] = "garbage"

    unique = uuid.uuid4().hex
    with (
        genstore.open_store(urls[0].format(unique)) as a,
        genstore.open_store(urls[1].format(unique)) as b,
    ):
        assert type(a.catalog).__name__ == type(b.catalog).__name__ == "SupabaseCatalog"
        check_stores_stay_apart(a, b, lambda store: _rows(fake, store), corrupt)


# -- tables of the first version -----------------------------------------------------------------


def _first_version_rows(fake: FakeSupabase) -> tuple[OperationRecord, ImageRecord]:
    """Rows as the first version's catalog wrote them (no store), through the fake's PostgREST."""
    fake.tables_version = 1
    legacy, picture = op(7), image("alice", 3)
    fake.tables["genstore_operations"][(legacy.operation_id,)] = {
        "operation_id": legacy.operation_id, "operation_type": "text_to_image",
        "status": "succeeded", "user_id": "alice", "idempotency_key": None,
        "created_at": legacy.created_at, "record": legacy.model_dump(mode="json"),
    }  # fmt: skip
    fake.tables["genstore_images"][("alice", picture.image_id)] = {
        "user_id": "alice", "image_id": picture.image_id, "status": "generated",
        "created_at": picture.created_at, "updated_at": picture.updated_at,
        "record": picture.model_dump(mode="json"),
    }  # fmt: skip
    return legacy, picture


def test_first_version_tables_are_refused_until_the_sql_is_applied(
    opened: Opened, fake: FakeSupabase
) -> None:
    _first_version_rows(fake)
    with pytest.raises(ConfigurationError, match="genstore supabase-sql"):
        opened.catalog("supabase://shared/a")
    assert all("store" not in row for rows in fake.tables.values() for row in rows.values())


def test_rows_of_the_first_version_go_to_the_first_store_opening_the_catalog(
    opened: Opened, fake: FakeSupabase
) -> None:
    legacy, picture = _first_version_rows(fake)
    fake.apply_migration()
    first = opened.catalog("supabase://shared/first")
    later = opened.catalog("supabase://shared/later")
    assert first.get_operation(legacy.operation_id) == legacy
    assert first.get_image("alice", picture.image_id) == picture
    assert list(first.operation_ids()) == [legacy.operation_id]
    assert later.get_operation(legacy.operation_id) is None
    assert later.list_images("alice", status=None, offset=0, limit=10) == ([], 0)
    assert (later.stats().operations, later.stats().images) == (0, 0)
    again = opened.catalog("supabase://shared/first")  # taken once: opening again changes nothing
    assert (again.stats().operations, again.stats().images) == (1, 1)
    stores = {row["store"] for rows in fake.tables.values() for row in rows.values()}
    assert stores == {"supabase://shared/first"}


def test_old_rows_clashing_with_the_stores_own_stay_unowned_and_opening_still_works(
    opened: Opened, fake: FakeSupabase, caplog: pytest.LogCaptureFixture
) -> None:
    legacy, _ = _first_version_rows(fake)
    fake.apply_migration()
    mine = op(7, prompt="indexed again since")
    row = dict(fake.tables["genstore_operations"][("", legacy.operation_id)])
    row |= {"store": "supabase://shared/a", "record": mine.model_dump(mode="json")}
    fake.tables["genstore_operations"][("supabase://shared/a", legacy.operation_id)] = row
    with caplog.at_level(logging.WARNING, "genstore_adapters.supabase.catalog"):
        catalog = opened.catalog("supabase://shared/a")
    assert "genstore_operations written before" in caplog.text and "stay unowned" in caplog.text
    assert "genstore_images" not in caplog.text
    assert catalog.get_operation(legacy.operation_id) == mine
    assert catalog.get_image("alice", "img_0003") is not None  # the images were adopted
    assert ("", legacy.operation_id) in fake.tables["genstore_operations"]


# -- migration.sql on the real PostgreSQL ---------------------------------------------------------

_SHAPE_QUERIES = {
    "columns": "select table_name, column_name, data_type, is_nullable, column_default,"
    " collation_name from information_schema.columns where table_schema = %(s)s",
    "constraints": "select t.relname, c.conname, pg_get_constraintdef(c.oid) from pg_constraint c"
    " join pg_class t on t.oid = c.conrelid where t.relnamespace = %(s)s::regnamespace",
    "indexes": "select t.relname, i.relname, replace(pg_get_indexdef(x.indexrelid), %(s)s, 'S')"
    " from pg_index x join pg_class i on i.oid = x.indexrelid join pg_class t on t.oid ="
    " x.indrelid where t.relnamespace = %(s)s::regnamespace",
    "policies": "select tablename, policyname, cmd, roles::text, qual from pg_policies"
    " where schemaname = %(s)s",
    "security": "select relname, relrowsecurity from pg_class"
    " where relnamespace = %(s)s::regnamespace and relkind = 'r'",
    "grants": "select table_name, grantee, privilege_type from information_schema.role_table_grants"
    " where table_schema = %(s)s and grantee in ('anon', 'authenticated')",
}


def _shape(conn: Any, schema: str) -> dict[str, set[tuple[Any, ...]]]:
    """The tables' definition in ``schema``: columns (in any order), keys, checks, indexes,
    policies, row-level security and grants."""
    return {
        name: {tuple(row) for row in conn.execute(query, {"s": schema})}
        for name, query in _SHAPE_QUERIES.items()
    }


def _index_oids(conn: Any, schema: str) -> set[tuple[Any, ...]]:
    query = "select relname, oid from pg_class where relnamespace = %s::regnamespace"
    return {tuple(row) for row in conn.execute(query + " and relkind = 'i'", [schema])}


def _insert_first_version_rows(conn: Any) -> None:
    from psycopg.types.json import Jsonb

    conn.execute(
        "insert into genstore_operations (operation_id, operation_type, status, user_id,"
        " idempotency_key, created_at, record) values ('op_1', 't', 'succeeded', 'alice',"
        " 'key-1', %s, %s), ('op_2', 't', 'failed', null, null, %s, %s)",
        [T0, Jsonb({"operation_id": "op_1"}), T0, Jsonb({"operation_id": "op_2"})],
    )
    conn.execute(
        "insert into genstore_images (user_id, image_id, status, created_at, updated_at, record)"
        " values ('alice', 'img_1', 'generated', %s, %s, %s)",
        [T0, T0, Jsonb({"user_id": "alice", "image_id": "img_1"})],
    )


@pytest.mark.postgres
def test_the_sql_upgrades_first_version_tables_to_a_fresh_install_keeping_their_rows() -> None:
    from genstore_adapters.supabase import migration_sql
    from supabase_sql import fill_variables, scratch_schema, supabase_database

    sql = migration_sql("genstore-test")
    with supabase_database() as conn:
        fresh = scratch_schema(conn)
        conn.execute(sql)
        upgraded = scratch_schema(conn)
        conn.execute(fill_variables(FIRST_SQL.read_text(encoding="utf-8")))
        _insert_first_version_rows(conn)
        before = conn.execute("select * from genstore_operations order by 1").fetchall()
        conn.execute(sql)
        shape, oids = _shape(conn, upgraded), _index_oids(conn, upgraded)
        conn.execute(sql)  # again: nothing changes, no index is rebuilt
        assert (_shape(conn, upgraded), _index_oids(conn, upgraded)) == (shape, oids)
        assert shape == _shape(conn, fresh)
        assert {row[1] for row in shape["indexes"]} == {
            "genstore_operations_pkey", "genstore_images_pkey",
            "genstore_operations_store_created_idx", "genstore_operations_store_user_idx",
            "genstore_operations_store_type_idx", "genstore_operations_store_user_type_idx",
            "genstore_operations_store_status_idx", "genstore_operations_store_idempotency_idx",
            "genstore_images_store_user_created_idx", "genstore_images_store_user_status_idx",
        }  # fmt: skip
        assert all(" USING btree (store, " in row[2] for row in shape["indexes"])
        # The rows stay as they were, with store '' (what the fake's apply_migration does).
        after = conn.execute(
            "select operation_id, operation_type, status, user_id, idempotency_key,"
            " created_at, record, store from genstore_operations order by 1"
        ).fetchall()
        assert after == [(*row, "") for row in before]
        images = conn.execute("select store, user_id, image_id from genstore_images").fetchall()
        assert images == [("", "alice", "img_1")]


@pytest.mark.postgres
def test_the_upgraded_tables_take_the_catalogs_statements_and_refuse_the_old_ones() -> None:
    """What PostgREST makes of the catalog's requests, as SQL, on upgraded tables."""
    import psycopg
    from genstore_adapters.supabase import migration_sql
    from psycopg.types.json import Jsonb
    from supabase_sql import fill_variables, scratch_schema, supabase_database

    upsert = (
        "insert into genstore_operations (store, operation_id, operation_type, status,"
        " created_at, record) values (%s, 'op_1', 't', 'succeeded', now(), %s)"
        " on conflict ({}) do update set record = excluded.record"
    )
    with supabase_database() as conn:
        schema = scratch_schema(conn)
        conn.execute(fill_variables(FIRST_SQL.read_text(encoding="utf-8")))
        _insert_first_version_rows(conn)
        conn.execute(migration_sql("genstore-test"))
        conn.execute(migration_sql("genstore-test"))
        mine = Jsonb({"operation_id": "op_1", "mine": True})
        # The store opening first adopts the old rows (PATCH ?store=eq. {"store": ...}); one
        # clashing with a row of its own refuses the whole statement.
        with conn.transaction(force_rollback=True):
            conn.execute(upsert.format("store, operation_id"), ["s://a", mine])
            with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
                conn.execute("update genstore_operations set store = 's://a' where store = ''")
        adopted = conn.execute("update genstore_operations set store = 's://a' where store = ''")
        assert adopted.rowcount == 2
        # on_conflict=store,operation_id: the same id in two stores, an upsert in each.
        for store in ("s://a", "s://b", "s://b"):
            conn.execute(upsert.format("store, operation_id"), [store, mine])
        rows = conn.execute("select store, operation_id from genstore_operations order by 1, 2")
        assert rows.fetchall() == [("s://a", "op_1"), ("s://a", "op_2"), ("s://b", "op_1")]
        # The first version's on_conflict=operation_id is refused (42P10: apply the SQL, the
        # catalog says), as the fake refuses it.
        with pytest.raises(psycopg.errors.InvalidColumnReference), conn.transaction():
            conn.execute(upsert.format("operation_id"), ["s://a", mine])
        # Row-level security as before: a signed-in user reads their own rows, in any store.
        conn.execute(f'grant usage on schema auth, "{schema}" to authenticated')
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', '{\"sub\": \"alice\"}', true)")
        own = conn.execute("select store, operation_id from genstore_operations").fetchall()
        assert own == [("s://a", "op_1")]


@pytest.mark.postgres
def test_psql_applies_the_file_with_its_variables_over_the_first_version_twice() -> None:
    """The header's other way: ``psql -v ... -f migration.sql``, on a scratch database."""
    import shutil
    import subprocess
    from importlib.resources import files

    import psycopg
    from genstore_adapters.supabase import migration_sql
    from helpers import need_server
    from supabase_sql import PG_DSN, SUPABASE_STUBS, add_roles, scratch_schema, supabase_database

    psql = shutil.which("psql")
    need_server(psql is not None, "psql (PostgreSQL's client)")
    assert psql is not None
    new_file = files("genstore_adapters.supabase").joinpath("migration.sql")
    database = f"gs_supa_{uuid.uuid4().hex[:10]}"
    variables = {
        "genstore_bucket": "genstore",
        "genstore_images_prefix": "images/",
        "genstore_storage_policy": "genstore_read_own_images_genstore",
    }

    def apply(path: Any) -> None:
        command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"]
        command += [arg for k, v in variables.items() for arg in ("-v", f"{k}={v}")]
        subprocess.run([*command, "-d", database, "-f", str(path)], check=True, timeout=60)

    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        add_roles(admin)
        admin.execute(f'create database "{database}"')
    try:
        with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{database}", autocommit=True) as conn:
            conn.execute(SUPABASE_STUBS)
            apply(FIRST_SQL)
            conn.execute(
                "insert into genstore_operations (operation_id, operation_type, status,"
                """ created_at, record) values ('op_1', 't', 's', now(), '{"operation_id": "op_1"}')"""
            )
            apply(new_file)
            shape = _shape(conn, "public")
            apply(new_file)
            assert _shape(conn, "public") == shape
            rows = conn.execute("select store, operation_id from genstore_operations").fetchall()
            assert rows == [("", "op_1")]
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{database}" with (force)')
    with supabase_database() as conn:
        fresh = scratch_schema(conn)
        conn.execute(migration_sql("genstore"))
        assert _shape(conn, fresh) == shape  # the same as applied in one piece
