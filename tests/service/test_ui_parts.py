"""The web UI's pure parts: filter parsing, thumbnails and their cache key, views, file headers."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import genstore
import pytest
from genstore import ArtifactRef, OperationRecord
from genstore.exceptions import BackendUnavailable, InvalidInput
from genstore_asgi.service.ui._files import Unsatisfiable, inline_type, parse_range
from genstore_asgi.service.ui._filters import matches_search, parse_filters
from genstore_asgi.service.ui._session import csrf_token
from genstore_asgi.service.ui._thumbs import (
    NotAnImage,
    cached_thumbnail,
    make_thumbnail,
    thumbnail_key,
)
from genstore_asgi.service.ui._views import artifact_views, kind_of
from helpers import png_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

PARAMS = st.dictionaries(
    st.sampled_from(["type", "status", "since", "until", "q", "cursor", "other"]),
    st.one_of(
        st.text(max_size=300),
        st.dates().map(date.isoformat),
        st.sampled_from(["succeeded", "failed", "pending", ""]),
    ),
)


@settings(deadline=None)  # a shared CI machine makes timing noise, not bugs
@given(PARAMS)
def test_parsing_filters_never_raises_and_drops_what_it_cannot_use(params: dict[str, str]) -> None:
    filters = parse_filters(params)
    assert filters.status in ("", "pending", "succeeded", "failed")
    assert len(filters.q) <= 200 and len(filters.operation_type) <= 200
    if filters.since and filters.until:
        assert filters.since <= filters.until
    kwargs = filters.store_kwargs()
    if kwargs["since"] is not None and kwargs["until"] is not None:
        assert kwargs["since"] < kwargs["until"]


@settings(deadline=None)  # a shared CI machine makes timing noise, not bugs
@given(PARAMS)
def test_the_query_string_of_parsed_filters_parses_back_to_them(params: dict[str, str]) -> None:
    filters = parse_filters(params)
    again = parse_filters(dict(parse_qsl(filters.query())))
    assert again == dataclasses.replace(filters, errors=())


def test_until_includes_the_whole_day_and_bad_values_are_reported() -> None:
    filters = parse_filters({"since": "2026-03-01", "until": "2026-03-01"})
    kwargs = filters.store_kwargs()
    assert kwargs["since"] == datetime(2026, 3, 1, tzinfo=UTC)
    assert kwargs["until"] == datetime(2026, 3, 2, tzinfo=UTC)
    reversed_dates = parse_filters({"since": "2026-03-02", "until": "2026-03-01"})
    assert reversed_dates.since is None and "after" in reversed_dates.errors[0]
    assert parse_filters({"status": "lost"}).errors


@pytest.mark.parametrize(
    ("prompt", "q", "found"),
    [
        ("Un Café noir", "café", True),
        ("Un Cafe\u0301 noir", "CAFÉ", True),  # decomposed é in the prompt
        ("un chat", "", True),
        (None, "chat", False),
        ("un chien", "chat", False),
    ],
)
def test_prompt_search_ignores_case_and_unicode_forms(
    prompt: str | None, q: str, found: bool
) -> None:
    assert matches_search(prompt, q) is found


def test_thumbnail_keys_are_content_addressed_and_checked() -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    assert thumbnail_key(sha, 256) == f"thumbnails/{sha[:2]}/{sha}-256.webp"
    for bad_sha in ("../" + sha[3:], sha.upper(), "ab"):
        with pytest.raises(InvalidInput):
            thumbnail_key(bad_sha, 256)
    with pytest.raises(InvalidInput):
        thumbnail_key(sha, 4096)


@pytest.mark.parametrize(
    ("size", "mode", "expected"), [((1000, 500), "RGB", (256, 128)), ((50, 80), "RGBA", (50, 80))]
)
def test_thumbnails_fit_the_box_and_keep_transparency(
    size: tuple[int, int], mode: str, expected: tuple[int, int]
) -> None:
    buf = io.BytesIO()
    Image.new(mode, size, (255, 0, 0, 128) if mode == "RGBA" else "red").save(buf, "PNG")
    with Image.open(io.BytesIO(make_thumbnail(buf.getvalue(), 256))) as thumb:
        assert thumb.format == "WEBP" and thumb.size == expected
        assert thumb.mode == ("RGBA" if mode == "RGBA" else "RGB")


def test_thumbnails_apply_exif_orientation() -> None:
    image = Image.new("RGB", (400, 100), "green")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90°: a portrait photo stored landscape
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif)
    with Image.open(io.BytesIO(make_thumbnail(buf.getvalue(), 256))) as thumb:
        assert thumb.size == (64, 256)


def test_what_is_not_an_image_or_is_too_large_is_refused() -> None:
    with pytest.raises(NotAnImage):
        make_thumbnail(b"<html>not an image</html>", 256)
    with pytest.raises(NotAnImage):
        make_thumbnail(png_bytes(8, 8)[:40], 256)  # truncated
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG")  # 100 Mpx, a few KB compressed
    with pytest.raises(NotAnImage, match="too large"):
        make_thumbnail(buf.getvalue(), 256)


def test_a_thumbnail_cache_that_cannot_be_written_still_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with genstore.open_store(tmp_path / "data") as store:
        data = png_bytes(300, 300)
        sha = hashlib.sha256(data).hexdigest()

        def refuse(*args: object, **kwargs: object) -> int:
            raise BackendUnavailable("read-only")

        monkeypatch.setattr(store.blobs, "write", refuse)
        reads: list[int] = []

        def source() -> bytes:
            reads.append(1)
            return data

        first = cached_thumbnail(store, sha, 128, source)
        assert cached_thumbnail(store, sha, 128, source) == first
        assert len(reads) == 2 and list(store.blobs.list("thumbnails/")) == []
        monkeypatch.undo()
        cached_thumbnail(store, sha, 128, source)
        assert cached_thumbnail(store, sha, 128, source) == first
        assert len(reads) == 3  # cached after the third make


def ref(content_type: str, n: int = 0) -> ArtifactRef:
    return ArtifactRef(key=f"k/{n}", sha256="0" * 64, size=1, content_type=content_type)


def test_every_result_has_a_view_in_order() -> None:
    now = datetime.now(UTC)
    one = OperationRecord(
        operation_id="op",
        operation_type="t",
        status="succeeded",
        created_at=now,
        results=[ref("image/png")],
    )
    assert [v.index for v in artifact_views(one, "results")] == [0]
    none = OperationRecord(operation_id="op", operation_type="t", status="failed", created_at=now)
    assert artifact_views(none, "results") == []
    many = OperationRecord(
        operation_id="op",
        operation_type="t",
        status="succeeded",
        created_at=now,
        results=[ref("image/png", 0), ref("video/mp4", 1), ref("image/svg+xml", 2)],
    )
    views = artifact_views(many, "results")
    assert [(v.index, v.kind, v.thumbnail) for v in views] == [
        (0, "image", True),
        (1, "video", False),
        (2, "file", False),
    ]


@pytest.mark.parametrize(
    ("content_type", "kind", "inline"),
    [
        ("image/png", "image", "image/png"),
        ("IMAGE/JPEG; q=1", "image", "image/jpeg"),
        ("video/webm", "video", "video/webm"),
        ("image/svg+xml", "file", None),
        ("text/html", "file", None),
        ("application/octet-stream", "file", None),
        ("", "file", None),
    ],
)
def test_only_types_a_browser_cannot_run_are_shown_inline(
    content_type: str, kind: str, inline: str | None
) -> None:
    assert kind_of(content_type) == kind
    assert inline_type(content_type) == inline


def test_csrf_tokens_differ_per_session_and_are_stable() -> None:
    assert csrf_token("a") == csrf_token("a") != csrf_token("b")
    assert len(csrf_token("a")) == 64


@settings(deadline=None)
@given(st.integers(0, 600), st.integers(0, 800), st.integers(0, 800))
def test_a_byte_range_selects_what_python_slicing_selects(size: int, a: int, b: int) -> None:
    data = bytes(i % 256 for i in range(size))
    try:
        got = parse_range(f"bytes={a}-{b}", size)
    except Unsatisfiable:
        assert a >= size and b >= a
        return
    if b < a:
        assert got is None
        return
    assert got is not None
    assert data[got[0] : got[1] + 1] == data[a : b + 1] != b""


@settings(deadline=None)
@given(st.integers(0, 600), st.integers(0, 800))
def test_open_and_suffix_ranges_match_slicing(size: int, n: int) -> None:
    data = bytes(i % 256 for i in range(size))
    for header, expected in ((f"bytes={n}-", data[n:]), (f"bytes=-{n}", data[-n:] if n else b"")):
        try:
            got = parse_range(header, size)
        except Unsatisfiable:
            assert expected == b""
            continue
        assert got is not None and data[got[0] : got[1] + 1] == expected


@given(st.text(max_size=40), st.integers(0, 1000))
def test_range_parsing_only_ever_raises_unsatisfiable(header: str, size: int) -> None:
    try:
        got = parse_range(header, size)
    except Unsatisfiable:
        return
    assert got is None or 0 <= got[0] <= got[1] < size


@pytest.mark.parametrize("header", [None, "", "bytes=0-1,4-5", "items=0-1", "bytes=-", "bytes=a-b"])
def test_ranges_not_understood_send_the_whole_blob(header: str | None) -> None:
    assert parse_range(header, 100) is None
