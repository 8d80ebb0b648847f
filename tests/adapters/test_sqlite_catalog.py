"""The SQLite catalog: rows carry their store, older files migrate on open, a catalog inside its
store's folder survives moving the folder."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import genstore
from genstore import OperationRecord, OperationStatus
from genstore.plugin import HistoryQuery
from genstore_adapters.sqlite.catalog import SQLiteCatalog
from genstore_adapters.sqlite.schema import LATEST_VERSION

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
