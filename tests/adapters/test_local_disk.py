"""A local store whose own disk cannot be written when it opens, or loses its folder later: it
opens anyway, fails ``BackendUnavailable`` (the recorder's cue to spool) and works once the disk
does. The unwritable folder and the full disk themselves, under a real server, are in
tests/asgi/test_store_disk.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import genstore
import pytest
from genstore import BackendUnavailable, OperationRecord, OperationStatus
from genstore_adapters.local.blobs import LocalBlobStore
from genstore_adapters.sqlite.catalog import SQLiteCatalog


def record(n: int) -> OperationRecord:
    return OperationRecord(
        operation_id=f"20250101_01JGB{n:021d}",
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        operation_type="t",
        status=OperationStatus.SUCCEEDED,
    )


def test_a_catalog_that_cannot_be_opened_yet_opens_and_is_made_by_the_first_call_that_can(
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.sqlite3"
    path.mkdir()  # in the way: SQLite cannot open the file now (as with no write permission)
    catalog = SQLiteCatalog(path, timeout=1)  # opens all the same
    try:
        with pytest.raises(BackendUnavailable, match="unable to open"):
            catalog.upsert_operation(record(1))
        path.rmdir()
        catalog.upsert_operation(record(1))
        assert catalog.get_operation(record(1).operation_id) == record(1)
        assert catalog.stats().operations == 1 and catalog.needs_reindex() is None
    finally:
        catalog.close()


def test_a_store_whose_temporary_folder_is_missing_makes_it_on_the_next_write(
    tmp_path: Path,
) -> None:
    blobs = LocalBlobStore(tmp_path / "store")
    (tmp_path / "store" / ".tmp").rmdir()  # as when the store opened unable to make it
    blobs.write("a/b.txt", [b"x"])
    assert blobs.read("a/b.txt") == b"x"


def test_a_store_whose_folder_went_away_is_unavailable_and_never_made_again(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    with genstore.open_store(root) as store:
        store.save_complete_operation(operation_type="t", prompt="before")
        moved = tmp_path / "moved"
        root.rename(moved)  # an unmounted disk: its mount point empty, or gone
        with pytest.raises(BackendUnavailable, match="is gone"):
            store.blobs.write("a/b.txt", [b"x"])
        assert not root.exists()  # nothing written beside the real store
        moved.rename(root)
        store.blobs.write("a/b.txt", [b"x"])
        assert store.blobs.read("a/b.txt") == b"x"
