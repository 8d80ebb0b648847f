"""verify and repair (``genstore._maintenance``): what the scan reports about the catalog itself
(rows that do not parse, a catalog recreated empty) and how ``--fix`` heals it from the records."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import genstore
import pytest
from genstore import CorruptRecord
from genstore._maintenance import VerifyReport
from genstore.plugin import Catalog
from genstore_adapters.local.blobs import LocalBlobStore
from genstore_adapters.sqlite.catalog import SQLiteCatalog
from helpers import png_bytes

NO_GRACE = timedelta(0)


class _PlainSQLite(SQLiteCatalog):
    """A catalog that leaves ``unreadable_rows`` to the base class, as a third party may."""

    unreadable_rows = Catalog.unreadable_rows


def _ids(store: genstore.Store) -> list[str]:
    return [r.operation_id for r in store.history(limit=100).items]


@pytest.mark.parametrize("field", ["corrupt_index", "needs_reindex"])
def test_a_finding_about_the_catalog_is_not_ok_and_is_reported(field: str) -> None:
    report = VerifyReport()
    setattr(report, field, ["x"])
    assert not report.ok
    assert report.as_dict()[field] == ["x"] and report.as_dict()["ok"] is False


def test_the_default_unreadable_rows_reads_every_row_back(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with genstore.open_store(root) as store:
        ids = [store.save_complete_operation(operation_type="t").operation_id for _ in range(3)]
        created = store.images.create(user_id="u1", prompt="p", image_data=png_bytes())
    with sqlite3.connect(root / "catalog.sqlite3") as db:
        db.execute("UPDATE operations SET record = 'x' WHERE operation_id = ?", (ids[0],))
        db.execute("UPDATE images SET record = '{}'")
    catalog = _PlainSQLite(root / "catalog.sqlite3")
    with genstore.Store(LocalBlobStore(root), catalog) as store:
        expected = sorted([ids[0], f"u1/{created.image_id}"])
        assert sorted(catalog.unreadable_rows()) == expected
        assert store.verify(grace=NO_GRACE).corrupt_index == expected
        store.verify(fix=True, grace=NO_GRACE)
        assert list(catalog.unreadable_rows()) == []
        assert sorted(_ids(store)) == sorted(ids)


def test_verify_reads_stale_pending_operations_from_the_records_not_the_catalog(
    tmp_path: Path,
) -> None:
    root = tmp_path / "s"
    long_ago = datetime.now(UTC) - timedelta(days=3)
    with genstore.open_store(root) as store:
        pending = store.start_operation(operation_type="t", created_at=long_ago).operation_id
        done = store.save_complete_operation(operation_type="t").operation_id
    (root / "catalog.sqlite3").write_bytes(b"garbage, not a database" * 64)
    with genstore.open_store(root) as store:
        with pytest.raises(CorruptRecord):
            store.history()  # the catalog refuses queries until it is rebuilt...
        report = store.verify(grace=NO_GRACE)  # ...but verify still answers in full
        assert report.stale_pending == [pending] and report.needs_reindex
        # A catalog to rebuild is one finding, not one per record it lacks.
        assert (report.unindexed, report.stale_index, report.corrupt_index) == ([], [], [])
        fixed = store.verify(fix=True, grace=NO_GRACE)
        assert fixed.fixed
        assert sorted(_ids(store)) == sorted([pending, done])
        assert store.get_operation(pending).status.value == "failed"
        assert store.verify(grace=NO_GRACE).ok
