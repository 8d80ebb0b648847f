"""``migrate``: local -> memory:// and local -> S3 (moto), resumable after failures injected
midway, idempotent, records only ever after their artefacts, checksums verified."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import genstore
import pytest
from genstore import BackendUnavailable, GenstoreError, ImageStatus
from genstore._migrate import MigrateReport, migrate
from genstore.plugin import BlobInfo, BlobStore
from helpers import png_bytes

COLORS = ("red", "green", "blue", "white", "black", "yellow")


def _fill(store: genstore.Store, n: int = 6) -> None:
    """n operations (shared inputs, results, one failed without result, an idempotency key),
    and two user images, one of them updated."""
    shared = png_bytes(4, 4, "red")
    for i in range(n):
        store.save_complete_operation(
            operation_type="img_to_img",
            prompt=f"prompt {i}",
            input_images=[shared, png_bytes(3, 3, COLORS[i % len(COLORS)])],
            result=png_bytes(8 + i, 8, COLORS[i % len(COLORS)]),
            user_id="user_1",
            idempotency_key=f"op-{i}" if i % 2 else None,
        )
    store.save_complete_operation(operation_type="text_to_video", prompt="x", error="no")
    first = store.images.create(user_id="user_2", prompt="un chat", image_data=png_bytes(5, 5))
    store.images.create(user_id="user_2", prompt="un chien", image_data=png_bytes(6, 6))
    store.images.update_status(user_id="user_2", image_id=first.image_id, status="printed")


def _blobs(store: genstore.Store) -> dict[str, bytes]:
    prefixes = ("inputs/", "operations/", "images/", "idempotency/")
    return {i.key: store.blobs.read(i.key) for p in prefixes for i in store.blobs.list(p)}


def _assert_same(src: genstore.Store, dst: genstore.Store) -> None:
    assert _blobs(dst) == _blobs(src)
    assert list(dst.iter_operations()) == list(src.iter_operations())
    src_images = src.images.list(user_id="user_2")
    dst_images = dst.images.list(user_id="user_2")
    assert [(i.image_id, i.status, i.sha256) for i in dst_images.items] == [
        (i.image_id, i.status, i.sha256) for i in src_images.items
    ]


def _assert_never_half(dst: genstore.Store) -> None:
    """Every record at the destination has every artefact it names there."""
    for record in dst.iter_operations():
        for ref in [*record.inputs, *([record.result] if record.result else [])]:
            assert hashlib.sha256(dst.read_artifact(ref)).hexdigest() == ref.sha256
    keys = {i.key for i in dst.blobs.list("images/")}
    for info in dst.blobs.list("images/"):
        if info.key.endswith(".json"):
            image = genstore.ImageRecord.model_validate_json(dst.blobs.read(info.key))
            assert image.key in keys


@pytest.fixture
def src(tmp_path: Path) -> Iterator[genstore.Store]:
    with genstore.open_store(tmp_path / "src") as s:
        _fill(s)
        yield s


@pytest.fixture
def memory_dst(tmp_path: Path) -> Iterator[genstore.Store]:
    url = f"memory://{uuid.uuid4().hex}?catalog=sqlite:///{tmp_path}/dst.sqlite3"
    with genstore.open_store(url) as s:
        yield s


def _counts(report: MigrateReport) -> tuple[int, int, int, int]:
    return report.records, report.images, report.artefacts, report.skipped


def test_local_to_memory_copies_everything_and_indexes_it(
    src: genstore.Store, memory_dst: genstore.Store
) -> None:
    total = len(_blobs(src))
    ticks: list[int] = []
    report = migrate(src, memory_dst, progress=ticks.append)
    assert report.ok, report.failures
    # 7 operation records, 2 image records; 7 inputs + 6 results + 2 PNGs + 3 markers.
    assert _counts(report) == (7, 2, 18, 0)
    assert report.bytes == sum(len(b) for b in _blobs(src).values())
    assert report.indexed == 9
    assert sum(ticks) == total
    _assert_same(src, memory_dst)
    assert memory_dst.get_operation(src.history().items[0].operation_id)
    assert memory_dst.verify().ok


def test_a_second_run_copies_nothing(src: genstore.Store, memory_dst: genstore.Store) -> None:
    migrate(src, memory_dst)
    again = migrate(src, memory_dst)
    assert again.ok
    assert _counts(again) == (0, 0, 0, 27)
    assert again.bytes == 0


def test_a_second_run_copies_what_changed(src: genstore.Store, memory_dst: genstore.Store) -> None:
    migrate(src, memory_dst)
    image = src.images.list(user_id="user_2").items[-1]
    src.images.update_status(user_id="user_2", image_id=image.image_id, status="ordered")
    new = src.save_complete_operation(operation_type="text_to_image", result=png_bytes(9, 9))
    again = migrate(src, memory_dst)
    # the new record and its result; the image record changed in place (same size, new status)
    assert _counts(again) == (1, 1, 1, 26)
    assert memory_dst.images.get(user_id="user_2", image_id=image.image_id).status == (
        ImageStatus.ORDERED
    )
    assert memory_dst.get_operation(new.operation_id) == new.record
    _assert_same(src, memory_dst)


def test_verify_checks_every_artefact_and_repairs_a_corrupt_one(
    src: genstore.Store, memory_dst: genstore.Store
) -> None:
    first = migrate(src, memory_dst, verify=True)
    assert first.ok and first.verified == 15  # inputs, results, PNGs (not the markers)
    record = src.history().items[1]
    assert record.result is not None
    corrupt = bytes(b ^ 0xFF for b in memory_dst.read_artifact(record.result))
    memory_dst.blobs.write(record.result.key, [corrupt])
    assert _counts(migrate(src, memory_dst)) == (0, 0, 0, 27)  # same size: only verify sees it
    repaired = migrate(src, memory_dst, verify=True)
    assert repaired.ok and _counts(repaired) == (0, 0, 1, 26)
    assert memory_dst.read_artifact(record.result) == src.read_artifact(record.result)


def test_a_source_that_does_not_match_its_record_is_reported(
    src: genstore.Store, memory_dst: genstore.Store
) -> None:
    record = src.history().items[1]
    assert record.result is not None
    src.blobs.write(record.result.key, [b"\x00" * record.result.size])
    report = migrate(src, memory_dst)
    record_key = f"operations/{record.operation_id[:8]}/{record.operation_id}.json"
    errors = {f.key: f.error for f in report.failures}
    assert set(errors) == {record.result.key, record_key}
    assert "sha256" in errors[record.result.key]
    # The record whose artefact failed is not copied: it would point at wrong bytes.
    assert not memory_dst.blobs.exists(record_key)
    # Checked again with verify: the source is still wrong, and still reported.
    assert record.result.key in {f.key for f in migrate(src, memory_dst, verify=True).failures}
    _assert_never_half(memory_dst)


def test_a_corrupt_source_record_is_copied_as_is_and_reported(
    src: genstore.Store, memory_dst: genstore.Store
) -> None:
    key = "operations/20200101/20200101_01H00000000000000000000000.json"
    src.blobs.write(key, [b"{not json"])
    report = migrate(src, memory_dst)
    assert [f.key for f in report.failures] == [key]
    assert memory_dst.blobs.read(key) == b"{not json"


# -- failures injected midway ----------------------------------------------------------------


class FailingBlobs(BlobStore):
    """A real BlobStore whose writes fail on chosen keys, or on every write after the first n."""

    def __init__(
        self,
        inner: BlobStore,
        *,
        keys: Iterable[str] = (),
        after: int | None = None,
        error: type[GenstoreError] = GenstoreError,
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.default_catalog = inner.default_catalog
        self.keys = set(keys)
        self.after = after
        self.error = error
        self.writes = 0

    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        self.writes += 1
        if key in self.keys or (self.after is not None and self.writes > self.after):
            for _ in chunks:  # consumed, as a real failing upload would
                pass
            raise self.error(f"injected failure writing {key}")
        return self.inner.write(key, chunks, content_type=content_type, exclusive=exclusive)

    def _open(self, key: str) -> IO[bytes]:
        return self.inner.open(key)

    def _exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def _delete(self, key: str) -> None:
        self.inner.delete(key)

    def _list(self, prefix: str) -> Iterator[BlobInfo]:
        return self.inner.list(prefix)


def test_resume_after_one_artefact_failed(src: genstore.Store, memory_dst: genstore.Store) -> None:
    victim = src.history().items[2]
    assert victim.result is not None
    flaky = genstore.Store(
        FailingBlobs(memory_dst.blobs, keys=[victim.result.key]), memory_dst.catalog
    )
    first = migrate(src, flaky)
    assert {f.key for f in first.failures} == {
        victim.result.key,
        f"operations/{victim.operation_id[:8]}/{victim.operation_id}.json",
    }
    with pytest.raises(genstore.NotFound):
        memory_dst.get_operation(victim.operation_id)
    _assert_never_half(memory_dst)

    second = migrate(src, memory_dst)
    assert second.ok
    assert _counts(second) == (1, 0, 1, 25)  # just the failed result and its record
    _assert_same(src, memory_dst)


def test_a_destination_that_stops_answering_stops_the_run_and_it_resumes(
    src: genstore.Store, memory_dst: genstore.Store
) -> None:
    down = genstore.Store(
        FailingBlobs(memory_dst.blobs, after=10, error=BackendUnavailable), memory_dst.catalog
    )
    first = migrate(src, down, workers=2)
    assert not first.ok
    assert "stopped early" in str(first.failures[-1])
    assert _copied(first) <= 10
    _assert_never_half(memory_dst)

    second = migrate(src, memory_dst)
    assert second.ok
    assert _copied(second) + second.skipped == 27
    _assert_same(src, memory_dst)


def _copied(report: MigrateReport) -> int:
    return report.records + report.images + report.artefacts


# -- local -> S3 ------------------------------------------------------------------------------


@pytest.mark.s3
def test_local_to_s3_keeps_content_types_and_verifies(
    src: genstore.Store, s3_url: str, s3_client: Any
) -> None:
    with genstore.open_store(s3_url) as dst:
        report = migrate(src, dst, verify=True)
        assert report.ok, report.failures
        assert _counts(report) == (7, 2, 18, 0) and report.verified == 15
        _assert_same(src, dst)
        assert migrate(src, dst).bytes == 0
        bucket = dst.blobs.url.split("/")[2]
        for obj in s3_client.list_objects_v2(Bucket=bucket)["Contents"]:
            head = s3_client.head_object(Bucket=bucket, Key=obj["Key"])
            expected = "application/json" if obj["Key"].endswith(".json") else "image/png"
            assert head["ContentType"] == expected, obj["Key"]


def test_workers_must_be_positive(src: genstore.Store, memory_dst: genstore.Store) -> None:
    with pytest.raises(genstore.InvalidInput):
        migrate(src, memory_dst, workers=0)
