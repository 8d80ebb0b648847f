"""``StoreContract``: what every store shows through the public ``Store`` API, whatever its
backend and catalog (saving, history, deleting, housekeeping, user images)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

import genstore
from genstore import ImageStatus, InvalidInput, NotFound, OperationStatus

from ._support import FileServer, StoreFixtures, png_bytes

__all__ = ["StoreContract"]


class StoreContract(StoreFixtures):
    """Behaviour every store must show, whatever its backend and catalog."""

    # -- saving and reading back ---------------------------------------------------------------

    def test_saved_operation_reads_back_exactly(self, store: genstore.Store) -> None:
        inp, out = png_bytes(10, 6, "blue"), png_bytes(20, 12, "green")
        saved = store.save_complete_operation(
            operation_type=genstore.OperationType.TEXT_TO_IMAGE,
            prompt="un chat",
            parameters={"aspectRatio": "16:9", "guidance": 3.5, "nested": [1, {"a": None}]},
            input_images=[inp],
            result=out,
            user_id="user_2ta6NRH0kZxG51Gcn6gCaVzJQPe",
            duration_ms=12.5,
        )
        got = store.get_operation(saved.operation_id)
        assert got == saved.record
        assert got.status is OperationStatus.SUCCEEDED
        assert got.result is not None and got.result.content_type == "image/png"
        assert (got.result.width, got.result.height) == (20, 12)
        assert store.read_artifact(got.result) == out
        assert store.read_artifact(got.inputs[0]) == inp
        with store.open_artifact(got.inputs[0]) as f:
            assert f.read() == inp
        assert json.loads(got.model_dump_json())["parameters"]["nested"] == [1, {"a": None}]

    def test_inputs_are_stored_once_however_often_sent(self, store: genstore.Store) -> None:
        same = png_bytes(5, 5, "red")
        refs = [
            store.save_complete_operation(operation_type="img_to_img", input_images=[same]).record
            for _ in range(3)
        ]
        keys = {r.inputs[0].key for r in refs}
        assert len(keys) == 1
        assert [b.key for b in store.blobs.list("inputs/")] == list(keys)

    def test_error_marks_failed_and_keeps_everything(self, store: genstore.Store) -> None:
        r = store.save_complete_operation(
            operation_type="text_to_video",
            prompt="p",
            parameters={"x": 1},
            error=RuntimeError("provider said no"),
            input_images=[png_bytes()],
        ).record
        assert r.status is OperationStatus.FAILED
        assert r.error == "provider said no"
        assert store.get_operation(r.operation_id).inputs == r.inputs

    def test_result_url_is_downloaded(self, store: genstore.Store, file_server: FileServer) -> None:
        body = png_bytes(16, 9, "purple")
        url = file_server.add("out.png", body, "image/png")
        r = store.save_complete_operation(operation_type="text_to_image", result_url=url).record
        assert r.result_source_url == url
        assert r.result_error is None
        assert r.result is not None and store.read_artifact(r.result) == body
        assert r.result.key.endswith("_out.png")

    def test_unfetchable_result_url_still_saves_the_record(
        self, store: genstore.Store, file_server: FileServer
    ) -> None:
        r = store.save_complete_operation(
            operation_type="text_to_image", prompt="p", result_url=file_server.url("missing.png")
        ).record
        assert r.result is None
        assert r.result_error is not None and "404" in r.result_error
        assert store.get_operation(r.operation_id).result_source_url == file_server.url(
            "missing.png"
        )

    def test_idempotency_key_lands_on_one_record(self, store: genstore.Store) -> None:
        first = store.save_complete_operation(operation_type="t", idempotency_key="req-1")
        again = store.save_complete_operation(operation_type="t", idempotency_key="req-1")
        assert again.created is False
        assert again.operation_id == first.operation_id
        assert len(store.history().items) == 1

    def test_bad_input_raises_typed_and_writes_nothing(self, store: genstore.Store) -> None:
        for bad in (
            {"user_id": "../etc"},
            {"user_id": "a/b"},
            {"user_id": "x\x00"},
            {"user_id": "u" * 200},
            {"operation_type": ""},
            {"parameters": {"f": float("nan")}},
            {"input_images": [12]},
        ):
            kwargs = {"operation_type": "t", **bad}
            with pytest.raises(InvalidInput):
                store.save_complete_operation(**kwargs)  # type: ignore[arg-type]
        assert store.history().items == []
        assert list(store.blobs.list("operations/")) == []

    # -- history --------------------------------------------------------------------------------

    def test_history_pages_newest_first_without_gaps(self, store: genstore.Store) -> None:
        ids = [
            store.save_complete_operation(operation_type="t", prompt=str(i)).operation_id
            for i in range(23)
        ]
        seen: list[str] = []
        cursor = None
        while True:
            page = store.history(limit=10, cursor=cursor)
            seen += [r.operation_id for r in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == ids[::-1]

    def test_history_orders_ties_by_id_and_cursor_is_stable(self, store: genstore.Store) -> None:
        when = datetime(2025, 6, 18, tzinfo=UTC)
        ids = [
            store.save_complete_operation(operation_type="t", created_at=when).operation_id
            for _ in range(5)
        ]
        first = store.history(limit=2)
        rest = store.history(limit=10, cursor=first.next_cursor)
        assert [r.operation_id for r in first.items + rest.items] == sorted(ids, reverse=True)

    def test_history_filters(self, store: genstore.Store) -> None:
        base = datetime(2025, 1, 1, tzinfo=UTC)
        for i in range(12):
            store.save_complete_operation(
                operation_type=("text_to_image", "text_to_video")[i % 2],
                user_id=f"user_{i % 3}",
                error="x" if i % 4 == 0 else None,
                created_at=base + timedelta(hours=i),
            )
        page = store.history(user_id="user_1", operation_type="text_to_video")
        assert [r.created_at.hour for r in page.items] == [7, 1]
        assert {r.status for r in store.history(status="failed").items} == {OperationStatus.FAILED}
        assert len(store.history(status="failed").items) == 3
        window = store.history(since=base + timedelta(hours=3), until=base + timedelta(hours=6))
        assert [r.created_at.hour for r in window.items] == [5, 4, 3]

    def test_history_rejects_bad_arguments(self, store: genstore.Store) -> None:
        with pytest.raises(InvalidInput):
            store.history(limit=0)
        with pytest.raises(InvalidInput):
            store.history(cursor="not-a-cursor")
        with pytest.raises(InvalidInput):
            store.history(status="maybe")

    # -- deleting and housekeeping ------------------------------------------------------------

    def test_delete_removes_record_and_result_not_shared_inputs(
        self, store: genstore.Store
    ) -> None:
        shared = png_bytes(3, 3)
        a = store.save_complete_operation(operation_type="t", input_images=[shared], result=b"a")
        b = store.save_complete_operation(operation_type="t", input_images=[shared], result=b"b")
        store.delete_operation(a.operation_id)
        with pytest.raises(NotFound):
            store.get_operation(a.operation_id)
        assert a.record.result is not None and not store.blobs.exists(a.record.result.key)
        assert store.read_artifact(b.record.inputs[0]) == shared
        with pytest.raises(NotFound):
            store.delete_operation(a.operation_id)

    def test_cleanup_removes_old_operations_and_unreferenced_inputs(
        self, store: genstore.Store
    ) -> None:
        old = store.save_complete_operation(
            operation_type="t",
            input_images=[png_bytes(4, 4)],
            created_at=datetime.now(UTC) - timedelta(days=40),
        )
        new = store.save_complete_operation(operation_type="t", input_images=[png_bytes(5, 5)])
        dry = store.cleanup(older_than=timedelta(days=30), dry_run=True, grace=timedelta(0))
        assert (dry.operations, dry.inputs, dry.dry_run) == (1, 1, True)
        store.get_operation(old.operation_id)  # a dry run deletes nothing
        kept = store.cleanup(older_than=timedelta(days=30))  # the input is younger than the grace
        assert (kept.operations, kept.inputs) == (1, 0)
        with pytest.raises(NotFound):
            store.get_operation(old.operation_id)
        store.get_operation(new.operation_id)
        store.cleanup(older_than=timedelta(days=30), grace=timedelta(0))
        assert [b.key for b in store.blobs.list("inputs/")] == [new.record.inputs[0].key]

    def test_reindex_gives_back_the_same_history(self, store: genstore.Store) -> None:
        for i in range(7):
            store.save_complete_operation(operation_type="t", prompt=str(i), user_id="u")
        before = store.history(limit=100).items
        store.catalog.clear()
        report = store.reindex()
        assert report.operations == 7
        assert store.history(limit=100).items == before

    def test_verify_finds_and_fixes_orphans(self, store: genstore.Store) -> None:
        store.save_complete_operation(operation_type="t", result=b"kept")
        assert store.verify(grace=timedelta(0)).ok
        store.blobs.write("operations/20250101/20250101_01JGB0000000000000000000XX_out.bin", [b"o"])
        report = store.verify(grace=timedelta(0))
        assert report.orphan_blobs == [
            "operations/20250101/20250101_01JGB0000000000000000000XX_out.bin"
        ]
        store.verify(fix=True, grace=timedelta(0))
        assert store.verify(grace=timedelta(0)).ok

    def test_export_jsonl_round_trips(self, store: genstore.Store) -> None:
        saved = [store.save_complete_operation(operation_type="t", prompt=str(i)) for i in range(3)]
        out = io.StringIO()
        assert store.export("jsonl", out) == 3
        back = [
            genstore.OperationRecord.model_validate_json(line) for line in out.getvalue().split()
        ]
        assert back == [s.record for s in reversed(saved)]

    # -- blobs ----------------------------------------------------------------------------------

    def test_blob_primitives(self, store: genstore.Store) -> None:
        blobs = store.blobs
        assert blobs.write("images/u/a.json", [b"ab", b"c"], content_type="application/json") == 3
        assert blobs.read("images/u/a.json") == b"abc"
        assert blobs.exists("images/u/a.json")
        with pytest.raises(genstore.AlreadyExists):
            blobs.write("images/u/a.json", [b"x"], exclusive=True)
        assert blobs.read("images/u/a.json") == b"abc"
        blobs.write("images/u/a.json", [b"new"])
        assert blobs.read("images/u/a.json") == b"new"
        assert [(b.key, b.size) for b in blobs.list("images/")] == [("images/u/a.json", 3)]
        blobs.delete("images/u/a.json")
        blobs.delete("images/u/a.json")
        assert not blobs.exists("images/u/a.json")
        with pytest.raises(NotFound):
            blobs.read("images/u/a.json")

    # -- user images ----------------------------------------------------------------------------

    def test_images_lifecycle_and_isolation(self, store: genstore.Store) -> None:
        created = [
            store.images.create(user_id="user_a", prompt=f"p{i}", image_data=png_bytes(6, 4))
            for i in range(3)
        ]
        page = store.images.list(user_id="user_a", page=1, limit=2)
        assert page.total == 3 and len(page.items) == 2
        assert page.items[0].image_id == created[-1].image_id
        got = store.images.get(user_id="user_a", image_id=created[0].image_id)
        assert (got.width, got.height) == (6, 4)
        with pytest.raises(NotFound):
            store.images.get(user_id="user_b", image_id=created[0].image_id)
        assert store.images.list(user_id="user_b").total == 0
        store.images.update_status(
            user_id="user_a", image_id=created[1].image_id, status=ImageStatus.PRINTED
        )
        printed = store.images.list(user_id="user_a", status=ImageStatus.PRINTED)
        assert [i.image_id for i in printed.items] == [created[1].image_id]
        store.images.delete(user_id="user_a", image_id=created[2].image_id)
        assert not store.blobs.exists(created[2].key)
        with pytest.raises(NotFound):
            store.images.get(user_id="user_a", image_id=created[2].image_id)
