"""The SQLite catalog: rows carry their store, older files migrate on open, a catalog inside its
store's folder survives moving the folder."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import genstore
import pytest
from genstore import CorruptRecord, OperationRecord, OperationStatus
from genstore.plugin import HistoryQuery
from genstore_adapters.sqlite.catalog import SQLiteCatalog
from genstore_adapters.sqlite.schema import LATEST_VERSION
from shared_catalog import check_stores_stay_apart

VERSION_1 = """
CREATE TABLE operations (
    operation_id TEXT PRIMARY KEY, created_us INTEGER NOT NULL, user_id TEXT,
    operation_type TEXT NOT NULL, status TEXT NOT NULL, idempotency_key TEXT, record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX operations_time ON operations (created_us, operation_id);
CREATE INDEX operations_idempotency ON operations (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE images (
    user_id TEXT NOT NULL, image_id TEXT NOT NULL, status TEXT NOT NULL,
    created_us INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY (user_id, image_id)
) WITHOUT ROWID;
CREATE INDEX images_user ON images (user_id, created_us, image_id);
PRAGMA user_version = 1;
"""


def _history(store: genstore.Store) -> list[str]:
    return [r.operation_id for r in store.history(limit=100).items]


def test_two_stores_sharing_one_catalog_file_stay_apart(tmp_path: Path) -> None:
    catalog = f"sqlite:///{tmp_path}/shared.sqlite3"
    names = [f"memory://{uuid.uuid4().hex}" for _ in range(2)]
    with (
        genstore.open_store(names[0], catalog=catalog) as a,
        genstore.open_store(names[1], catalog=catalog) as b,
    ):
        mine = [a.save_complete_operation(operation_type="t").operation_id for _ in range(3)]
        theirs = b.save_complete_operation(operation_type="t").operation_id
        assert _history(a) == mine[::-1] and _history(b) == [theirs]
        assert (a.stats()["operations"], b.stats()["operations"]) == (3, 1)
        a.verify(fix=True, grace=timedelta(0))
        assert a.reindex().operations == 3
        assert _history(b) == [theirs]
        assert b.verify(grace=timedelta(0)).ok


def test_a_version_1_file_migrates_and_its_rows_go_to_the_first_store(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    record = OperationRecord(
        operation_id="20250101_01JGB00000000000000000000A",
        operation_type="t",
        status=OperationStatus.SUCCEEDED,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(VERSION_1)
        conn.execute(
            "INSERT INTO operations VALUES (?, 1, NULL, 't', 'succeeded', NULL, ?)",
            (record.operation_id, record.model_dump_json()),
        )
    first = SQLiteCatalog(path, store="memory://first")
    later = SQLiteCatalog(path, store="memory://later")
    try:
        assert first.get_operation(record.operation_id) == record
        assert first.query_operations(HistoryQuery()) == [record]
        assert later.get_operation(record.operation_id) is None
    finally:
        first.close()
        later.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (LATEST_VERSION,)


def test_a_local_store_keeps_its_history_when_its_folder_moves(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "before") as store:
        saved = store.save_complete_operation(operation_type="t").operation_id
    (tmp_path / "before").rename(tmp_path / "after")
    with genstore.open_store(tmp_path / "after") as store:
        assert _history(store) == [saved]


def test_history_stats_verify_fix_and_reindex_of_one_store_never_touch_another(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.sqlite3"

    def rows(store: str) -> list[tuple[str, ...]]:
        with contextlib.closing(sqlite3.connect(path)) as db:
            found = db.execute(
                "SELECT operation_id, '', record FROM operations WHERE store = ? UNION ALL"
                " SELECT user_id, image_id, record FROM images WHERE store = ?",
                (store, store),
            ).fetchall()
        return sorted(found)

    def corrupt(store: str, operation_id: str) -> None:
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute(
                "UPDATE operations SET record = 'garbage' WHERE store = ? AND operation_id = ?",
                (store, operation_id),
            )

    catalog = f"sqlite:///{path}"
    with (
        genstore.open_store(f"memory://{uuid.uuid4().hex}", catalog=catalog) as a,
        genstore.open_store(f"memory://{uuid.uuid4().hex}", catalog=catalog) as b,
    ):
        check_stores_stay_apart(a, b, rows, corrupt)


def test_a_store_opening_a_file_never_claims_the_rows_of_the_store_it_belongs_to(
    tmp_path: Path,
) -> None:
    with genstore.open_store(tmp_path / "home") as home:
        saved = home.save_complete_operation(operation_type="t").operation_id
    visitor = genstore.open_store(
        f"memory://{uuid.uuid4().hex}", catalog=f"sqlite:///{tmp_path}/home/catalog.sqlite3"
    )
    with visitor:
        assert _history(visitor) == []
    with genstore.open_store(tmp_path / "home") as home:
        assert _history(home) == [saved]


def test_corrupt_rows_are_named_and_listed_by_unreadable_rows(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    catalog = SQLiteCatalog(path, store="memory://x")
    try:
        record = OperationRecord(
            operation_id="20250101_01JGB00000000000000000000A",
            operation_type="t",
            status=OperationStatus.SUCCEEDED,
            created_at=datetime(2025, 1, 1, tzinfo=UTC),
        )
        catalog.upsert_operation(record)
        assert list(catalog.unreadable_rows()) == []
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("UPDATE operations SET record = '{\"operation_id\": null}'")
        with pytest.raises(CorruptRecord) as raised:
            catalog.query_operations(HistoryQuery())
        assert raised.value.key == record.operation_id and str(path) in str(raised.value)
        assert list(catalog.unreadable_rows()) == [record.operation_id]
        catalog.upsert_operation(record)
        assert catalog.query_operations(HistoryQuery()) == [record]
    finally:
        catalog.close()


def test_an_empty_file_is_a_valid_empty_catalog_and_stays(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    catalog = SQLiteCatalog(path, store="memory://x")
    try:
        assert catalog.needs_reindex() is None and catalog.stats().operations == 0
    finally:
        catalog.close()
    assert list(tmp_path.glob("*.corrupt-*")) == []
