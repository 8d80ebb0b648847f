"""BodyTee: what it keeps in memory, when it spools, and what it gives up past max_body."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from genstore_asgi._capture import BodyTee
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi.support import cut


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=50_000),
    sizes=st.lists(st.integers(0, 9000), min_size=1, max_size=6),
    limit=st.integers(1, 20_000),
)
def test_captured_bytes_equal_the_stream_for_any_chunking(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, sizes: list[int], limit: int
) -> None:
    sizes = [s or 1 for s in sizes]
    folder = str(tmp_path_factory.mktemp("tee"))
    tee = BodyTee(max_in_memory=limit, max_body=None, spool_dir=folder)
    chunks = cut(data, sizes)
    for i, chunk in enumerate(chunks):
        tee.feed(chunk, more=i < len(chunks) - 1)
    if not chunks:
        tee.feed(b"", more=False)
    body = tee.finish()
    try:
        assert body.usable and body.size == len(data)
        assert body.read() == data
        assert b"".join(body.iter_chunks()) == data
        assert (body.path is not None) == (len(data) > limit)
    finally:
        body.discard()
    assert body.path is None
    assert os.listdir(folder) == []


def test_past_max_body_nothing_is_kept_and_the_spool_is_deleted(tmp_path: Path) -> None:
    tee = BodyTee(max_in_memory=10, max_body=100, spool_dir=str(tmp_path))
    for _ in range(20):
        tee.feed(b"x" * 9, more=True)
    tee.feed(b"", more=False)
    body = tee.finish()
    assert body.overflow and body.complete and not body.usable
    assert body.size == 180 and body.chunks == [] and body.path is None
    assert os.listdir(tmp_path) == []


def test_an_unfinished_body_is_not_usable(tmp_path: Path) -> None:
    tee = BodyTee(max_in_memory=10, max_body=None, spool_dir=str(tmp_path))
    tee.feed(b"partial", more=True)
    body = tee.finish()
    assert not body.complete and not body.usable
    body.discard()


def test_a_reused_bytearray_does_not_change_the_copy(tmp_path: Path) -> None:
    tee = BodyTee(max_in_memory=1000, max_body=None, spool_dir=str(tmp_path))
    buffer = bytearray(b"abc")
    tee.feed(buffer, more=True)  # type: ignore[arg-type]  # a non-conforming server
    buffer[:] = b"xyz"
    tee.feed(b"", more=False)
    assert tee.finish().read() == b"abc"


def test_spool_failure_gives_up_quietly(tmp_path: Path) -> None:
    tee = BodyTee(max_in_memory=4, max_body=None, spool_dir=str(tmp_path / "missing"))
    tee.feed(b"0123456789", more=False)
    body = tee.finish()
    assert body.overflow and not body.usable
