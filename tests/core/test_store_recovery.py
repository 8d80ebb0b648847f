"""Recovery paths: hung downloads, a lost SQLite catalog file, a crash between record and index."""

from __future__ import annotations

import shutil
from pathlib import Path

import genstore
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
