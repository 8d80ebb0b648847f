"""The images API through a real store: local files + the SQLite catalog under tmp_path."""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import genstore
import pytest
from genstore import (
    AlreadyExists,
    BackendUnavailable,
    ImageRecord,
    ImageStatus,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)
from genstore import _images as images_module
from helpers import png_bytes
from PIL import Image

ALICE = "user_2ta6NRH0kZxG51Gcn6gCaVzJQPe"
BOB = "user_bob"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    with genstore.open_store(tmp_path / "data") as s:
        yield s


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def stored_files(root: Path) -> set[str]:
    """Every file under images/ (relative keys)."""
    base = root / "images"
    if not base.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file()}


def create(store: Any, user: str = ALICE, color: str = "red", **kw: Any) -> ImageRecord:
    kw.setdefault("prompt", f"a {color} square")
    kw.setdefault("image_data", b64(png_bytes(16, 9, color)))
    record: ImageRecord = store.images.create(user_id=user, **kw)
    return record


def bomb_png(width: int, height: int) -> bytes:
    row = b"\x00" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- create --------------------------------------------------------------------------------------


def test_create_stores_the_png_and_its_record(store: Any) -> None:
    png = png_bytes(16, 9, "blue")
    metadata = {"generated_by": "frontend", "steps": 30, "cfgScale": 7, "model": "stability-ai"}
    record = store.images.create(
        user_id=ALICE, prompt="developer", image_data=b64(png), metadata=metadata
    )
    root = store.blobs.path
    assert record.user_id == ALICE
    assert record.prompt == "developer"
    assert record.status is ImageStatus.GENERATED
    assert (record.width, record.height) == (16, 9)
    assert record.metadata == {**metadata, "width": 16, "height": 9}
    assert record.size == len(png)
    assert re.fullmatch(rf"images/{ALICE}/(\d+)_generated_\1\.png", record.key)
    ts = int(record.key.rsplit("/", 1)[1].split("_", 1)[0])
    assert int(record.created_at.timestamp() * 1000) == ts
    assert record.created_at == record.updated_at
    assert (root / record.key).read_bytes() == png
    assert record.image_url == (root / record.key).as_uri()
    stored = json.loads((root / "images" / ALICE / f"{record.image_id}.json").read_text())
    assert stored["image_url"] is None  # URLs are made on read, never stored
    assert ImageRecord.model_validate(stored) == record.model_copy(update={"image_url": None})
    assert store.images.read(user_id=ALICE, image_id=record.image_id) == png


def test_data_url_base64_and_raw_bytes_are_all_accepted(store: Any) -> None:
    png = png_bytes(5, 4)
    for data in (png, bytearray(png), "data:image/png;base64," + b64(png), b64(png)):
        record = store.images.create(user_id=ALICE, prompt="p", image_data=data)
        assert store.images.read(user_id=ALICE, image_id=record.image_id) == png


def test_caller_metadata_is_kept_and_size_filled_only_when_absent(store: Any) -> None:
    record = create(store, metadata={"width": 1024, "extra": {"a": [1, 2]}})
    assert record.metadata == {"width": 1024, "height": 9, "extra": {"a": [1, 2]}}
    assert (record.width, record.height) == (16, 9)  # the PNG's own size


def test_prompt_is_sanitised(store: Any) -> None:
    record = create(store, prompt="  un chat\x00 sur\r\nun toit\x1b  ")
    assert record.prompt == "un chat sur\nun toit"
    with pytest.raises(InvalidInput, match="prompt"):
        create(store, prompt="x" * 2001)


def test_two_creates_in_the_same_millisecond_get_distinct_keys(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images_module, "_now_ms", lambda: 1750207177406)
    first = create(store, color="red")
    second = create(store, color="green")
    assert first.key == f"images/{ALICE}/1750207177406_generated_1750207177406.png"
    assert second.key == f"images/{ALICE}/1750207177406_generated_1750207177406-1.png"
    assert store.images.read(user_id=ALICE, image_id=first.image_id) == png_bytes(16, 9, "red")
    assert store.images.read(user_id=ALICE, image_id=second.image_id) == png_bytes(16, 9, "green")
    page = store.images.list(user_id=ALICE)
    assert [r.image_id for r in page.items] == [second.image_id, first.image_id]


def test_same_millisecond_suffixes_are_bounded(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images_module, "_now_ms", lambda: 1750207177406)
    monkeypatch.setattr(images_module, "_MAX_SUFFIX", 2)
    create(store)
    create(store)
    before = stored_files(store.blobs.path)
    with pytest.raises(AlreadyExists):
        create(store)
    assert stored_files(store.blobs.path) == before


@pytest.mark.parametrize(
    "user_id", ["..", "../etc", "a/b", "a\\b", "a\x00b", "x" * 129, "", ".hidden", "a b", None]
)
def test_unsafe_user_ids_are_refused_and_nothing_is_written(store: Any, user_id: Any) -> None:
    with pytest.raises(InvalidInput, match="user_id"):
        create(store, user=user_id)
    with pytest.raises(InvalidInput, match="user_id"):
        store.images.list(user_id=user_id)
    with pytest.raises(InvalidInput, match="user_id"):
        store.images.get(user_id=user_id, image_id="img_x")
    with pytest.raises(InvalidInput, match="user_id"):
        store.images.delete(user_id=user_id, image_id="img_x")
    root = store.blobs.path
    assert stored_files(root) == set()
    assert [p for p in root.parent.rglob("*") if p.is_file() and "images" in p.parts] == []


@pytest.mark.parametrize("image_id", ["..", "../x", "a/b", "x\x00", "y" * 129])
def test_unsafe_image_ids_are_refused(store: Any, image_id: str) -> None:
    for call in (store.images.get, store.images.delete, store.images.read):
        with pytest.raises(InvalidInput, match="image_id"):
            call(user_id=ALICE, image_id=image_id)
    with pytest.raises(InvalidInput, match="image_id"):
        store.images.update_status(user_id=ALICE, image_id=image_id, status="printed")


def test_size_limit_is_checked_before_decoding(store: Any) -> None:
    garbage = "!" * (20 * 1024 * 1024)  # not base64 at all: decoding it would be InvalidInput
    with pytest.raises(PayloadTooLarge, match="10485760") as info:
        create(store, image_data=garbage)
    assert info.value.limit == 10 * 1024 * 1024
    with pytest.raises(PayloadTooLarge):
        create(store, image_data=b"\x89PNG" + b"\x00" * (10 * 1024 * 1024))
    assert stored_files(store.blobs.path) == set()


def test_a_configured_size_limit_applies(store: Any) -> None:
    api = images_module.ImagesAPI(store.blobs, store.catalog, max_image_bytes=50)
    png = png_bytes(16, 9)
    assert len(png) > 50
    with pytest.raises(PayloadTooLarge, match="limit of 50 bytes"):
        api.create(user_id=ALICE, prompt="p", image_data=b64(png))


def test_jpeg_is_refused(store: Any) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    with pytest.raises(InvalidInput, match="image/jpeg"):
        create(store, image_data=b64(buf.getvalue()))
    assert stored_files(store.blobs.path) == set()


def test_bad_base64_is_refused(store: Any) -> None:
    with pytest.raises(InvalidInput, match="base64") as info:
        create(store, image_data="not base64 at all!")
    assert not isinstance(info.value, PayloadTooLarge)


def test_decompression_bomb_is_refused(store: Any) -> None:
    bomb = bomb_png(10_000, 10_000)  # 100 megapixels in a few kilobytes
    with pytest.raises(InvalidInput, match="decompression bomb"):
        create(store, image_data=b64(bomb))
    assert stored_files(store.blobs.path) == set()


@pytest.mark.parametrize("metadata", [[1, 2], "x", {"a": float("nan")}, {1: 2}])
def test_bad_metadata_is_refused(store: Any, metadata: Any) -> None:
    with pytest.raises(InvalidInput, match="metadata"):
        create(store, metadata=metadata)
    assert stored_files(store.blobs.path) == set()


def test_record_write_failure_removes_the_png_and_raises_the_typed_error(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = store.blobs.write

    def failing_write(key: str, chunks: Iterable[bytes], **kw: Any) -> int:
        if key.endswith(".json"):
            raise BackendUnavailable("disk went away")
        return int(real_write(key, chunks, **kw))

    monkeypatch.setattr(store.blobs, "write", failing_write)
    with pytest.raises(BackendUnavailable, match="disk went away"):
        create(store)
    assert stored_files(store.blobs.path) == set()
    assert store.images.list(user_id=ALICE).total == 0


def test_catalog_failure_after_the_commit_point_still_saves_the_image(
    store: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(record: ImageRecord) -> None:
        raise BackendUnavailable("catalog down")

    monkeypatch.setattr(store.catalog, "upsert_image", broken)
    record = create(store)
    assert "saved but not indexed" in caplog.text
    monkeypatch.undo()
    # The record JSON is the truth: get finds it, and reindex puts it back in listings.
    assert store.images.get(user_id=ALICE, image_id=record.image_id) == record
    assert store.images.list(user_id=ALICE).total == 0
    store.reindex()
    assert [r.image_id for r in store.images.list(user_id=ALICE).items] == [record.image_id]


# --- list ----------------------------------------------------------------------------------------


def make_many(store: Any, n: int, monkeypatch: pytest.MonkeyPatch, user: str = ALICE) -> list[str]:
    """``n`` images one millisecond apart; their ids, newest first."""
    clock = iter(range(1_750_000_000_000, 1_750_000_000_000 + n))
    monkeypatch.setattr(images_module, "_now_ms", lambda: next(clock))
    ids = [create(store, user=user, prompt=f"image {i}").image_id for i in range(n)]
    monkeypatch.undo()
    return ids[::-1]


def test_list_pages_newest_first_with_totals(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    newest_first = make_many(store, 7, monkeypatch)
    pages = [store.images.list(user_id=ALICE, page=p, limit=3) for p in (1, 2, 3, 4)]
    assert [len(p.items) for p in pages] == [3, 3, 1, 0]
    assert all((p.total, p.limit) == (7, 3) for p in pages)
    assert [p.page for p in pages] == [1, 2, 3, 4]
    assert [r.image_id for p in pages for r in p.items] == newest_first
    default = store.images.list(user_id=ALICE)
    assert (default.page, default.limit, default.total) == (1, 10, 7)
    assert all(r.image_url and r.image_url.startswith("file://") for r in default.items)


def test_status_filter(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = make_many(store, 5, monkeypatch)
    store.images.update_status(user_id=ALICE, image_id=ids[1], status="printed")
    store.images.update_status(user_id=ALICE, image_id=ids[3], status="printed")
    store.images.update_status(user_id=ALICE, image_id=ids[4], status="ordered")
    printed = store.images.list(user_id=ALICE, status="printed")
    assert [r.image_id for r in printed.items] == [ids[1], ids[3]]
    assert printed.total == 2
    generated = store.images.list(user_id=ALICE, status=ImageStatus.GENERATED)
    assert [r.image_id for r in generated.items] == [ids[0], ids[2]]
    assert store.images.list(user_id=ALICE, status="deleted").total == 0
    with pytest.raises(InvalidInput, match="generated, printed, ordered, deleted"):
        store.images.list(user_id=ALICE, status="sold")


def test_soft_deleted_images_are_listed_only_when_asked_for(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = make_many(store, 9, monkeypatch)
    for i in (0, 4, 5):
        store.images.update_status(user_id=ALICE, image_id=ids[i], status="deleted")
    store.images.update_status(user_id=ALICE, image_id=ids[2], status="printed")
    store.images.update_status(user_id=ALICE, image_id=ids[7], status="ordered")
    visible = [ids[i] for i in (1, 2, 3, 6, 7, 8)]
    pages = [store.images.list(user_id=ALICE, page=p, limit=4) for p in (1, 2, 3)]
    assert [p.total for p in pages] == [6, 6, 6]
    assert [r.image_id for p in pages for r in p.items] == visible
    assert [len(p.items) for p in pages] == [4, 2, 0]
    deleted = store.images.list(user_id=ALICE, status="deleted")
    assert [r.image_id for r in deleted.items] == [ids[0], ids[4], ids[5]]
    assert deleted.total == 3
    # A soft-deleted image is still reachable by id, and its PNG is kept.
    assert store.images.get(user_id=ALICE, image_id=ids[0]).status is ImageStatus.DELETED
    assert store.images.read(user_id=ALICE, image_id=ids[0]).startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("page", "limit"), [(0, 10), (-1, 10), (1, 0), (1, 101), (True, 10), (1, "10"), ("1", 10)]
)
def test_bad_page_or_limit_is_refused(store: Any, page: Any, limit: Any) -> None:
    with pytest.raises(InvalidInput, match=r"page|limit"):
        store.images.list(user_id=ALICE, page=page, limit=limit)


def test_limit_of_100_is_accepted(store: Any) -> None:
    create(store)
    assert store.images.list(user_id=ALICE, limit=100).total == 1


# --- get / read / isolation ----------------------------------------------------------------------


def test_get_returns_the_record_with_a_fresh_url(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = create(store)
    calls: list[tuple[str, int]] = []

    def signed(key: str, *, expires: int = 3600) -> str:
        calls.append((key, expires))
        return f"https://signed.example/{key}?n={len(calls)}"

    monkeypatch.setattr(store.blobs, "url_for", signed)
    first = store.images.get(user_id=ALICE, image_id=record.image_id)
    second = store.images.get(user_id=ALICE, image_id=record.image_id)
    assert first.image_url != second.image_url
    assert calls == [(record.key, 3600), (record.key, 3600)]
    assert first.model_copy(update={"image_url": None}) == record.model_copy(
        update={"image_url": None}
    )
    assert (
        store.images.list(user_id=ALICE).items[0].image_url
        == f"https://signed.example/{record.key}?n=3"
    )


def test_get_falls_back_to_the_record_when_the_catalog_lacks_it(store: Any) -> None:
    record = create(store)
    store.catalog.delete_image(ALICE, record.image_id)
    assert store.images.get(user_id=ALICE, image_id=record.image_id) == record


def test_missing_image_is_not_found(store: Any) -> None:
    for call in (store.images.get, store.images.delete, store.images.read):
        with pytest.raises(NotFound):
            call(user_id=ALICE, image_id="img_missing")
    with pytest.raises(NotFound):
        store.images.update_status(user_id=ALICE, image_id="img_missing", status="printed")


def test_users_never_reach_each_others_images(store: Any) -> None:
    record = create(store, user=ALICE)
    assert store.images.list(user_id=BOB).items == []
    assert store.images.list(user_id=BOB).total == 0
    for call in (store.images.get, store.images.delete, store.images.read):
        with pytest.raises(NotFound):
            call(user_id=BOB, image_id=record.image_id)
    with pytest.raises(NotFound):
        store.images.update_status(user_id=BOB, image_id=record.image_id, status="deleted")
    assert store.images.get(user_id=ALICE, image_id=record.image_id) == record
    assert store.images.list(user_id=ALICE).total == 1


def test_images_survive_reopening_the_store(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "data") as first:
        record = create(first)
    with genstore.open_store(tmp_path / "data") as second:
        assert second.images.get(user_id=ALICE, image_id=record.image_id) == record


# --- update_status / delete ----------------------------------------------------------------------


def test_update_status_rewrites_record_and_catalog(store: Any) -> None:
    record = create(store)
    updated = store.images.update_status(user_id=ALICE, image_id=record.image_id, status="printed")
    assert updated.status is ImageStatus.PRINTED
    assert updated.updated_at >= record.updated_at
    assert updated.created_at == record.created_at
    path = store.blobs.path / "images" / ALICE / f"{record.image_id}.json"
    assert json.loads(path.read_text())["status"] == "printed"
    indexed = store.catalog.get_image(ALICE, record.image_id)
    assert indexed is not None
    assert indexed.status is ImageStatus.PRINTED
    assert store.images.get(user_id=ALICE, image_id=record.image_id) == updated
    again = store.images.update_status(user_id=ALICE, image_id=record.image_id, status="printed")
    assert again.updated_at == updated.updated_at  # nothing changed, nothing rewritten


@pytest.mark.parametrize("status", ["sold", "PRINTED", "", None, 3])
def test_update_status_refuses_unknown_values(store: Any, status: Any) -> None:
    record = create(store)
    with pytest.raises(InvalidInput, match="generated, printed, ordered, deleted"):
        store.images.update_status(user_id=ALICE, image_id=record.image_id, status=status)
    assert store.images.get(user_id=ALICE, image_id=record.image_id).status is ImageStatus.GENERATED


def test_delete_removes_png_record_and_row(store: Any) -> None:
    keep = create(store, color="green")
    record = create(store)
    root = store.blobs.path
    png_path = root / record.key
    json_path = root / "images" / ALICE / f"{record.image_id}.json"
    assert png_path.exists()
    assert json_path.exists()
    store.images.delete(user_id=ALICE, image_id=record.image_id)
    assert not png_path.exists()
    assert not json_path.exists()
    assert store.catalog.get_image(ALICE, record.image_id) is None
    with pytest.raises(NotFound):
        store.images.get(user_id=ALICE, image_id=record.image_id)
    with pytest.raises(NotFound):
        store.images.delete(user_id=ALICE, image_id=record.image_id)
    assert [r.image_id for r in store.images.list(user_id=ALICE).items] == [keep.image_id]
    assert stored_files(root) == {keep.key, f"images/{ALICE}/{keep.image_id}.json"}
    assert store.verify().orphan_blobs == []


# -- other image types, and images made from an operation's result ------------------------------


def image_bytes(fmt: str, width: int = 8, height: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "purple").save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_jpeg_and_webp_are_refused_unless_accepted(tmp_path: Path, fmt: str) -> None:
    data = image_bytes(fmt)
    with (
        genstore.open_store(tmp_path / "png-only") as store,
        pytest.raises(InvalidInput, match="must be PNG"),
    ):
        store.images.create(user_id="u", prompt="p", image_data=data)
    types = ("image/png", "image/jpeg", "image/webp")
    with genstore.open_store(tmp_path / "all", accepted_image_types=types) as store:
        image = store.images.create(user_id="u", prompt="p", image_data=data)
        assert (image.width, image.height) == (8, 6)
        assert image.content_type == f"image/{fmt.lower()}"
        assert image.key.endswith(".jpg" if fmt == "JPEG" else ".webp")
        assert store.images.read(user_id="u", image_id=image.image_id) == data
        assert store.verify(grace=timedelta(0)).ok


def test_a_jpeg_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    data = image_bytes("JPEG", 64, 64)
    with genstore.open_store(tmp_path / "s", accepted_image_types=("image/jpeg",)) as store:
        store.images.max_pixels = 64 * 64 - 1
        with pytest.raises(InvalidInput, match="decompression bomb"):
            store.images.create(user_id="u", prompt="p", image_data=data)
        truncated = image_bytes("JPEG", 64, 64)[:200]
        store.images.max_pixels = 10_000
        with pytest.raises(InvalidInput, match="not a valid JPEG"):
            store.images.create(user_id="u", prompt="p", image_data=truncated)
        assert store.images.list(user_id="u").total == 0


def test_unknown_accepted_types_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(genstore.ConfigurationError):
        genstore.open_store(tmp_path / "s", accepted_image_types=("image/gif",)).images  # noqa: B018


def test_an_image_made_from_an_operation_result(store: genstore.Store) -> None:
    first, second = png_bytes(5, 4, "red"), png_bytes(7, 3, "blue")
    saved = store.save_complete_operation(
        operation_type="text_to_image", prompt="un chat", results=[first, second], user_id="u1"
    )
    image = store.images.create_from_operation(
        user_id="u1", operation_id=saved.operation_id, index=1
    )
    assert store.images.read(user_id="u1", image_id=image.image_id) == second
    assert image.operation_id == saved.operation_id and image.prompt == "un chat"
    assert (image.width, image.height) == (7, 3)
    assert image.metadata["generated_by"] == "text_to_image"
    assert store.images.get(user_id="u1", image_id=image.image_id) == image


def test_an_image_from_someone_elses_operation_is_not_found(store: genstore.Store) -> None:
    saved = store.save_complete_operation(operation_type="t", results=[png_bytes()], user_id="u1")
    with pytest.raises(NotFound):
        store.images.create_from_operation(user_id="u2", operation_id=saved.operation_id)
    with pytest.raises(NotFound):
        store.images.create_from_operation(user_id="u1", operation_id=saved.operation_id, index=1)
    video = store.save_complete_operation(operation_type="t", results=[b"\x00\x00\x00\x18ftypmp42"])
    with pytest.raises(InvalidInput):
        store.images.create_from_operation(user_id="u1", operation_id=video.operation_id)
    assert store.images.list(user_id="u1").total == 0
    assert store.images.list(user_id="u2").total == 0
