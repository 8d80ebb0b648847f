"""``CatalogContract``: what every ``Catalog`` answers, called through its own methods.

Records are committed as a ``Store`` commits them: the JSON record into the blob store first
(the truth, which the ``sidecar`` catalog reads), then the catalog row. So the same tests hold
for catalogs that index and for those that read the records themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from genstore import ImageRecord, ImageStatus, OperationRecord, OperationStatus, Store, _keys
from genstore._ids import new_ulid
from genstore.plugin import Catalog, HistoryQuery

from ._support import StoreFixtures

__all__ = ["CatalogContract"]

T0 = datetime(2025, 6, 18, 12, 0, tzinfo=UTC)


def operation(
    when: datetime, *, user: str | None = "u1", kind: str = "text_to_image", failed: bool = False
) -> OperationRecord:
    """A record created at ``when`` with a fresh, well-formed id."""
    return OperationRecord(
        operation_id=f"{when:%Y%m%d}_{new_ulid()[1]}",
        operation_type=kind,
        status=OperationStatus.FAILED if failed else OperationStatus.SUCCEEDED,
        error="no" if failed else None,
        user_id=user,
        prompt=f"made at {when.isoformat()}",
        created_at=when,
    )


def image(user: str, n: int, *, status: ImageStatus = ImageStatus.GENERATED) -> ImageRecord:
    """The ``n``-th image of ``user`` (later ``n``: newer)."""
    when = T0 + timedelta(minutes=n)
    return ImageRecord(
        image_id=f"img_{n:04d}",
        user_id=user,
        prompt=f"image {n}",
        key=f"images/{user}/{n}_generated_{n}.png",
        status=status,
        size=3,
        sha256="0" * 64,
        width=1,
        height=1,
        created_at=when,
        updated_at=when,
    )


class CatalogContract(StoreFixtures):
    """Behaviour every catalog must show; ``catalog`` is the store's catalog."""

    @pytest.fixture
    def catalog(self, store: Store) -> Catalog:
        """The catalog under test."""
        return store.catalog

    @staticmethod
    def commit(store: Store, *records: OperationRecord | ImageRecord) -> None:
        """Write each record's JSON to the blob store, then upsert its catalog row."""
        for record in records:
            if isinstance(record, OperationRecord):
                key = _keys.operation_record_key(record.operation_id)
                store.blobs.write(key, [record.model_dump_json().encode()])
                store.catalog.upsert_operation(record)
            else:
                key = _keys.image_record_key(record.user_id, record.image_id)
                store.blobs.write(key, [record.model_dump_json().encode()])
                store.catalog.upsert_image(record)

    # -- operations -----------------------------------------------------------------------------

    def test_upsert_get_and_replace(self, store: Store, catalog: Catalog) -> None:
        record = operation(T0)
        self.commit(store, record)
        assert catalog.get_operation(record.operation_id) == record
        changed = record.model_copy(update={"prompt": "edited"})
        self.commit(store, changed)
        assert catalog.get_operation(record.operation_id) == changed
        assert catalog.query_operations(HistoryQuery()) == [changed]
        assert catalog.get_operation(operation(T0).operation_id) is None

    def test_upsert_operations_writes_a_batch_as_single_upserts_would(
        self, store: Store, catalog: Catalog
    ) -> None:
        older = operation(T0 - timedelta(hours=1), user="u2")
        self.commit(store, older)
        batch = [operation(T0 + timedelta(minutes=n), failed=n == 1) for n in range(3)]
        replaced = older.model_copy(update={"prompt": "replaced in the batch"})
        for record in [*batch, replaced]:  # the truth first, as the saver commits
            key = _keys.operation_record_key(record.operation_id)
            store.blobs.write(key, [record.model_dump_json().encode()])
        catalog.upsert_operations([*batch, replaced])
        catalog.upsert_operations([])  # an empty batch changes nothing
        expected = sorted([*batch, replaced], key=lambda r: r.created_at, reverse=True)
        assert catalog.query_operations(HistoryQuery()) == expected
        assert catalog.get_operation(older.operation_id) == replaced
        assert sorted(catalog.operation_ids()) == sorted(r.operation_id for r in expected)
        assert catalog.stats().by_status == {"succeeded": 3, "failed": 1}

    def test_query_is_newest_first_with_ties_by_id(self, store: Store, catalog: Catalog) -> None:
        tied = [operation(T0) for _ in range(3)]
        records = [operation(T0 - timedelta(hours=1)), *tied, operation(T0 + timedelta(hours=1))]
        self.commit(store, *records)
        expected = sorted(records, key=lambda r: (r.created_at, r.operation_id), reverse=True)
        assert catalog.query_operations(HistoryQuery()) == expected
        assert catalog.query_operations(HistoryQuery(limit=2)) == expected[:2]

    def test_query_filters(self, store: Store, catalog: Catalog) -> None:
        records = [
            operation(
                T0 + timedelta(hours=i),
                user=f"u{i % 2}",
                kind=("text_to_image", "text_to_video")[i % 3 == 0],
                failed=i % 4 == 0,
            )
            for i in range(12)
        ]
        self.commit(store, *records)

        def ids(**filters: object) -> list[str]:
            found = catalog.query_operations(HistoryQuery(limit=100, **filters))  # type: ignore[arg-type]
            return [r.operation_id for r in found]

        def expect(keep: object) -> list[str]:
            kept = [r for r in records if keep(r)]  # type: ignore[operator]
            return [r.operation_id for r in reversed(kept)]

        assert ids(user_id="u1") == expect(lambda r: r.user_id == "u1")
        assert ids(operation_type="text_to_video") == expect(
            lambda r: r.operation_type == "text_to_video"
        )
        assert ids(status="failed") == expect(lambda r: r.status is OperationStatus.FAILED)
        since, until = T0 + timedelta(hours=3), T0 + timedelta(hours=6)
        assert ids(since=since, until=until) == expect(lambda r: since <= r.created_at < until)
        assert ids(user_id="u0", status="succeeded", operation_type="text_to_image") == expect(
            lambda r: (
                r.user_id == "u0"
                and r.status is OperationStatus.SUCCEEDED
                and r.operation_type == "text_to_image"
            )
        )

    def test_cursor_pages_without_gaps_or_repeats(self, store: Store, catalog: Catalog) -> None:
        records = [operation(T0 + timedelta(minutes=i // 3)) for i in range(10)]
        self.commit(store, *records)
        seen: list[OperationRecord] = []
        before = None
        for _ in range(10):  # bounded: 4 pages are expected
            page = catalog.query_operations(HistoryQuery(limit=3, before=before))
            seen += page
            if len(page) < 3:
                break
            before = (page[-1].created_at, page[-1].operation_id)
        assert seen == sorted(records, key=lambda r: (r.created_at, r.operation_id), reverse=True)

    def test_delete_and_list_ids(self, store: Store, catalog: Catalog) -> None:
        kept, gone = operation(T0), operation(T0 + timedelta(seconds=1))
        self.commit(store, kept, gone)
        assert sorted(catalog.operation_ids()) == sorted([kept.operation_id, gone.operation_id])
        store.blobs.delete(_keys.operation_record_key(gone.operation_id))
        catalog.delete_operation(gone.operation_id)
        catalog.delete_operation(gone.operation_id)  # missing is not an error
        assert catalog.get_operation(gone.operation_id) is None
        assert catalog.query_operations(HistoryQuery()) == [kept]
        assert list(catalog.operation_ids()) == [kept.operation_id]

    # -- images ---------------------------------------------------------------------------------

    def test_images_page_newest_first_per_user(self, store: Store, catalog: Catalog) -> None:
        mine = [image("alice", n) for n in range(7)]
        self.commit(store, *mine, image("bob", 3))
        newest = list(reversed(mine))
        assert catalog.list_images("alice", status=None, offset=0, limit=3) == (newest[:3], 7)
        assert catalog.list_images("alice", status=None, offset=6, limit=3) == (newest[6:], 7)
        assert catalog.list_images("alice", status=None, offset=9, limit=3) == ([], 7)
        assert catalog.get_image("alice", "img_0003") == mine[3]
        assert catalog.get_image("carol", "img_0003") is None
        assert sorted(catalog.image_ids()) == sorted(
            [("alice", r.image_id) for r in mine] + [("bob", "img_0003")]
        )

    def test_image_status_filter_update_and_delete(self, store: Store, catalog: Catalog) -> None:
        records = [image("alice", n) for n in range(4)]
        self.commit(store, *records)
        printed = records[1].model_copy(update={"status": ImageStatus.PRINTED})
        self.commit(store, printed)
        assert catalog.list_images("alice", status=ImageStatus.PRINTED, offset=0, limit=10) == (
            [printed],
            1,
        )
        store.blobs.delete(_keys.image_record_key("alice", "img_0002"))
        catalog.delete_image("alice", "img_0002")
        catalog.delete_image("alice", "img_0002")  # missing is not an error
        assert catalog.get_image("alice", "img_0002") is None
        items, total = catalog.list_images("alice", status=None, offset=0, limit=10)
        assert total == 3 and [r.image_id for r in items] == ["img_0003", "img_0001", "img_0000"]

    # -- the whole catalog ----------------------------------------------------------------------

    def test_stats_count_by_type_and_status(self, store: Store, catalog: Catalog) -> None:
        self.commit(
            store,
            operation(T0, kind="a"),
            operation(T0, kind="a", failed=True),
            operation(T0, kind="b"),
            image("alice", 1),
            image("bob", 2),
        )
        stats = catalog.stats()
        assert (stats.operations, stats.images) == (3, 2)
        assert stats.by_type == {"a": 2, "b": 1}
        assert stats.by_status == {"succeeded": 2, "failed": 1}

    def test_clear_then_upsert_again_answers_the_same(self, store: Store, catalog: Catalog) -> None:
        records = [operation(T0 + timedelta(minutes=i)) for i in range(4)]
        images = [image("alice", n) for n in range(3)]
        self.commit(store, *records, *images)
        history = catalog.query_operations(HistoryQuery())
        page = catalog.list_images("alice", status=None, offset=0, limit=10)
        catalog.clear()
        for record in records:
            catalog.upsert_operation(record)
        for picture in images:
            catalog.upsert_image(picture)
        assert catalog.query_operations(HistoryQuery()) == history
        assert catalog.list_images("alice", status=None, offset=0, limit=10) == page
        assert catalog.stats().operations == 4
