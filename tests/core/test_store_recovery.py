"""Recovery paths: hung downloads, a lost or garbage SQLite catalog file, corrupt catalog rows, a
crash between record and index."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import genstore
import pytest
from genstore import CorruptRecord, _keys
from helpers import FileServer, png_bytes


def test_a_hung_result_download_times_out_and_the_record_is_kept(
    tmp_path: Path, file_server: FileServer
) -> None:
    url = file_server.add("slow.png", png_bytes(64, 64))
    file_server.stalls["slow.png"] = 3.0
    with genstore.open_store(tmp_path / "s", download_timeout=0.3) as store:
        record = store.save_complete_operation(
            operation_type="text_to_image", prompt="p", result_url=url
        ).record
        assert record.result is None
        assert record.result_error is not None and "timed out" in record.result_error
        assert store.get_operation(record.operation_id).result_source_url == url
        # The abandoned download left no blob behind (writes are atomic).
        assert [b.key for b in store.blobs.list("operations/")] == [
            f"operations/{record.operation_id[:8]}/{record.operation_id}.json"
        ]


def test_deleting_the_sqlite_file_then_reindex_gives_back_the_same_history(
    tmp_path: Path,
) -> None:
    root = tmp_path / "s"
    with genstore.open_store(root) as store:
        for i in range(12):
            store.save_complete_operation(
                operation_type=("text_to_image", "img_to_img")[i % 2],
                prompt=str(i),
                user_id=f"u{i % 3}",
                input_images=[png_bytes(4 + i, 4)],
            )
        store.images.create(user_id="u1", prompt="img", image_data=png_bytes())
        before = store.history(limit=100).items
        images_before = store.images.list(user_id="u1").items
    for name in ("catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm"):
        (root / name).unlink(missing_ok=True)
    with genstore.open_store(root) as store:
        assert store.history().items == []
        report = store.reindex()
        assert (report.operations, report.images, report.corrupt) == (12, 1, [])
        assert store.history(limit=100).items == before
        assert store.images.list(user_id="u1").items == images_before


def test_an_idempotent_retry_indexes_what_a_crash_left_unindexed(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with genstore.open_store(root) as store:
        first = store.save_complete_operation(operation_type="t", idempotency_key="k-1")
        store.catalog.delete_operation(first.operation_id)  # as if killed before the upsert
        assert store.history().items == []
        again = store.save_complete_operation(operation_type="t", idempotency_key="k-1")
        assert (again.created, again.operation_id) == (False, first.operation_id)
        assert [r.operation_id for r in store.history().items] == [first.operation_id]


def test_a_store_copied_elsewhere_opens_with_its_history(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "a") as store:
        saved = store.save_complete_operation(operation_type="t", result=b"r")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with genstore.open_store(tmp_path / "b") as copy:
        record = copy.get_operation(saved.operation_id)
        assert record.result is not None and copy.read_artifact(record.result) == b"r"


# -- a catalog file that is not a database ------------------------------------------------------


def _seed(store: genstore.Store, n: int = 4) -> list[str]:
    ids = [
        store.save_complete_operation(operation_type="t", prompt=str(i)).operation_id
        for i in range(n)
    ]
    store.images.create(user_id="u1", prompt="img", image_data=png_bytes())
    return ids[::-1]


def _history(store: genstore.Store) -> list[str]:
    return [r.operation_id for r in store.history(limit=100).items]


def test_a_garbage_catalog_file_never_blocks_opening_and_reindex_rebuilds_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "s"
    with genstore.open_store(root) as store:
        saved = _seed(store)
    (root / "catalog.sqlite3").write_bytes(os.urandom(8192))
    (root / "catalog.sqlite3-wal").write_bytes(b"stale wal")
    with caplog.at_level(logging.WARNING), genstore.open_store(root) as store:
        assert "was not a database" in caplog.text
        moved = sorted(p.name for p in root.glob("catalog.sqlite3.corrupt-*"))
        assert moved[1:] == [moved[0] + "-shm", moved[0] + "-wal"]
        with pytest.raises(CorruptRecord, match="genstore reindex") as raised:
            store.history()
        assert raised.value.kind == "catalog"
        with pytest.raises(CorruptRecord):
            store.images.list(user_id="u1")
        later = store.save_complete_operation(operation_type="t").operation_id  # saving goes on
        assert store.get_operation(saved[0]).operation_id == saved[0]  # from the JSON record
        report = store.verify(grace=timedelta(0))
        assert report.needs_reindex and not report.ok
        # Another process opening meanwhile learns the same from the file itself.
        with genstore.open_store(root) as other:
            with pytest.raises(CorruptRecord):
                other.history()
            assert store.reindex().operations == len(saved) + 1
            assert _history(other) == [later, *saved]  # refilled by the first: asked again
        assert len(store.images.list(user_id="u1").items) == 1
        assert store.verify(grace=timedelta(0)).ok


def test_verify_fix_rebuilds_a_recreated_catalog(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with genstore.open_store(root) as store:
        saved = _seed(store)
    (root / "catalog.sqlite3").write_bytes(b"\x00garbage" * 512)
    with genstore.open_store(root) as store:
        report = store.verify(fix=True, grace=timedelta(0))
        assert report.fixed and report.needs_reindex
        assert _history(store) == saved
        assert store.verify(grace=timedelta(0)).ok


def test_a_good_catalog_is_never_moved_aside(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with genstore.open_store(root) as store:
        saved = _seed(store)
    with genstore.open_store(root) as store:
        assert _history(store) == saved
    assert list(root.glob("catalog.sqlite3.corrupt-*")) == []


# -- corrupt rows ---------------------------------------------------------------------------


def test_corrupt_rows_are_named_and_verify_fix_rewrites_them_from_the_records(
    tmp_path: Path,
) -> None:
    root = tmp_path / "s"
    with genstore.open_store(root) as store:
        saved = _seed(store)
        image = store.images.list(user_id="u1").items[0]
    with sqlite3.connect(root / "catalog.sqlite3") as db:
        db.execute("UPDATE operations SET record = 'not json' WHERE operation_id = ?", (saved[1],))
        db.execute("UPDATE images SET record = '{\"schema_version\": 2}'")
    with genstore.open_store(root) as store:
        with pytest.raises(CorruptRecord) as raised:
            store.history()
        assert (raised.value.key, raised.value.kind) == (saved[1], "operation")
        assert "pydantic" not in str(raised.value) and "not json" not in str(raised.value)
        with pytest.raises(CorruptRecord, match=saved[1]):
            store.get_operation(saved[1])
        with pytest.raises(CorruptRecord) as raised:
            store.images.list(user_id="u1")
        assert raised.value.key == f"u1/{image.image_id}"
        report = store.verify(grace=timedelta(0))
        assert report.corrupt_index == sorted([saved[1], f"u1/{image.image_id}"])
        assert (report.stale_index, report.unindexed, report.corrupt) == ([], [], [])
        assert store.verify(fix=True, grace=timedelta(0)).fixed
        assert _history(store) == saved
        assert store.images.list(user_id="u1").items[0].image_id == image.image_id
        assert store.verify(grace=timedelta(0)).ok


def test_a_corrupt_row_whose_record_is_gone_is_dropped(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with genstore.open_store(root) as store:
        saved = _seed(store)
        store.blobs.delete(_keys.operation_record_key(saved[0]))
    with sqlite3.connect(root / "catalog.sqlite3") as db:
        db.execute("UPDATE operations SET record = '[]' WHERE operation_id = ?", (saved[0],))
    with genstore.open_store(root) as store:
        report = store.verify(fix=True, grace=timedelta(0))
        assert report.corrupt_index == [saved[0]] and report.stale_index == []
        assert _history(store) == saved[1:]
        assert store.verify(grace=timedelta(0)).ok


def test_a_damaged_record_in_a_sidecar_store_is_named_by_history(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "s", catalog="sidecar") as store:
        saved = _seed(store)
        key = _keys.operation_record_key(saved[2])
        store.blobs.write(key, [b'{"schema_version": 2, "operation_id": 7}'])
    with genstore.open_store(tmp_path / "s", catalog="sidecar") as store:
        with pytest.raises(CorruptRecord) as raised:
            store.history()
        assert raised.value.key == saved[2] and "restore it" in str(raised.value)
        assert store.stats()["operations"] == len(saved) - 1  # counts skip it
        report = store.verify(fix=True, grace=timedelta(0))
        assert report.corrupt == [key] and report.corrupt_index == []
        assert report.stale_index == [] and report.unindexed == []
